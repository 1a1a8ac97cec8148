//! A private OpenLDAP server for the LDAP source tests: `slapd` from the distribution, its
//! own port, configuration and database in a temporary folder, loaded with `slapadd` and
//! killed when the test drops it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::db::in_ci;

/// Where Debian puts the server, its modules and its schemas.
const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const MODULES: &str = "/usr/lib/ldap";
const SCHEMAS: &str = "/etc/ldap/schema";

/// The directory's suffix.
pub const SUFFIX: &str = "dc=example,dc=ac,dc=uk";
/// The read-only account rollcall binds as (the server's limits apply to it; the root DN has
/// none).
pub const READER_DN: &str = "cn=rollcall,ou=service,dc=example,dc=ac,dc=uk";
/// Its password.
pub const READER_PASSWORD: &str = "reader-secret";

/// A running slapd.
#[derive(Debug)]
pub struct Slapd {
    child: Child,
    /// `ldap://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Slapd {
    /// Starts slapd with `limits` (a slapd.conf `sizelimit`/`limits` line) over `ldif`; `None`
    /// when slapd is not installed (outside CI: the test says so and skips; in CI it fails).
    pub fn start(limits: &str, ldif: &str) -> Option<Slapd> {
        if !Path::new(SLAPD).exists() || !Path::new(SLAPADD).exists() {
            assert!(
                !in_ci(),
                "slapd is not installed (apt-get install slapd ldap-utils); CI must run the LDAP tests"
            );
            println!("SKIPPED: slapd is not installed (apt-get install slapd ldap-utils)");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("the database folder");
        let port = free_port();
        let conf = dir.path().join("slapd.conf");
        std::fs::write(&conf, config(dir.path(), &data, limits)).expect("slapd.conf is written");
        let base = dir.path().join("base.ldif");
        std::fs::write(&base, format!("{}\n{ldif}", skeleton())).expect("the LDIF is written");
        let load = Command::new(SLAPADD)
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&base)
            .output()
            .expect("slapadd runs");
        assert!(
            load.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        let url = format!("ldap://127.0.0.1:{port}");
        let child = Command::new(SLAPD)
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(format!("{url}/"))
            // A debug level keeps slapd in the foreground, so the test owns the process.
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd starts");
        let server = Slapd {
            child,
            url,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "slapd did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn config(dir: &Path, data: &Path, limits: &str) -> String {
    let path = |p: PathBuf| p.display().to_string();
    format!(
        "include {SCHEMAS}/core.schema\n\
         include {SCHEMAS}/cosine.schema\n\
         include {SCHEMAS}/inetorgperson.schema\n\
         modulepath {MODULES}\n\
         moduleload back_mdb\n\
         pidfile {}\n\
         argsfile {}\n\
         database mdb\n\
         maxsize 104857600\n\
         suffix \"{SUFFIX}\"\n\
         rootdn \"cn=admin,{SUFFIX}\"\n\
         rootpw admin-secret\n\
         directory {}\n\
         {limits}\n",
        path(dir.join("slapd.pid")),
        path(dir.join("slapd.args")),
        path(data.to_path_buf()),
    )
}

/// The suffix, the organisational units and the account rollcall binds as.
fn skeleton() -> String {
    format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example University\n\n\
         dn: ou=service,{SUFFIX}\nobjectClass: organizationalUnit\nou: service\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=alumni,{SUFFIX}\nobjectClass: organizationalUnit\nou: alumni\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: {READER_DN}\nobjectClass: person\ncn: rollcall\nsn: rollcall\nuserPassword: {READER_PASSWORD}\n"
    )
}

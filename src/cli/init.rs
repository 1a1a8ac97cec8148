//! `rollcall init`: a commented starter `rollcall.toml` that works at once against the
//! built-in sandbox tenant, with the small example it reads, and the next commands to type.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use super::Context;
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::exit::{CommandError, Exit};
use crate::sandbox::{SandboxOptions, Seed, SeedUser};

/// The port of the sandbox tenant the starter configuration talks to, unless `--sandbox-port`
/// says another (`serve` listens on 9187 by default, the sandbox next to it).
pub const DEFAULT_SANDBOX_PORT: u16 = 9188;

/// The folder, beside the configuration, that holds the example's files.
const EXAMPLE_DIR: &str = "rollcall-example";
const EXAMPLE_CSV: &str = "lists.csv";
const EXAMPLE_SEED: &str = "sandbox-seed.json";
const EXAMPLE_SECRET: &str = "sandbox-secret";

/// The example's people: `(user principal name, display name, on the example list)`.
/// One has an account but is on no list, as in any real tenant.
const PEOPLE: [(&str, &str, bool); 4] = [
    ("ada.lovelace@example.ac.uk", "Ada Lovelace", true),
    ("alan.turing@example.ac.uk", "Alan Turing", true),
    ("grace.hopper@example.ac.uk", "Grace Hopper", true),
    ("edsger.dijkstra@example.ac.uk", "Edsger Dijkstra", false),
];

/// `rollcall init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Where to write the configuration [default: the --config path, else ./rollcall.toml].
    /// The example's files go to `rollcall-example/` beside it.
    #[arg(long, value_name = "FILE")]
    pub path: Option<PathBuf>,
    /// Overwrite the configuration and the example's files if they exist.
    #[arg(long)]
    pub force: bool,
    /// The port on 127.0.0.1 of the sandbox tenant the configuration's `[graph]` names.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_SANDBOX_PORT)]
    pub sandbox_port: u16,
}

/// One file `init` writes.
struct Written {
    path: PathBuf,
    text: String,
    owner_only: bool,
}

/// `rollcall init`: writes the files, or refuses before writing any if one exists (without
/// `--force`), then checks that the configuration it wrote loads, and prints what to do next.
pub fn run(context: &Context, args: &InitArgs) -> Result<Exit, CommandError> {
    let path = args
        .path
        .clone()
        .unwrap_or_else(|| context.config_path.clone());
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(PathBuf::new, Path::to_owned);
    let example = base.join(EXAMPLE_DIR);
    let files = [
        Written {
            path: path.clone(),
            text: starter_config(args.sandbox_port),
            owner_only: false,
        },
        Written {
            path: example.join(EXAMPLE_CSV),
            text: example_csv(),
            owner_only: false,
        },
        Written {
            path: example.join(EXAMPLE_SEED),
            text: example_seed().map_err(CommandError::failed)?,
            owner_only: false,
        },
        Written {
            path: example.join(EXAMPLE_SECRET),
            text: format!("{}\n", SandboxOptions::default().client_secret),
            owner_only: true,
        },
    ];
    if !args.force
        && let Some(existing) = files.iter().find(|f| f.path.exists())
    {
        return Err(CommandError::usage(anyhow::anyhow!(
            "{} exists; rollcall init leaves it alone (--force overwrites it and the example's files)",
            existing.path.display()
        )));
    }
    std::fs::create_dir_all(&example)
        .with_context(|| format!("cannot create the folder {}", example.display()))
        .map_err(CommandError::failed)?;
    for file in &files {
        write(file).map_err(CommandError::failed)?;
    }
    // What init writes must load: a starter that fails `config check` would be no start.
    Config::load(&path).map_err(|e| {
        CommandError::failed(anyhow::anyhow!(
            "the starter configuration does not validate, a defect in rollcall: {e}"
        ))
    })?;
    for file in &files {
        println!("wrote {}", file.path.display());
    }
    // The printed commands find the file by themselves when ROLLCALL_CONFIG names it, or
    // when it is the default and ROLLCALL_CONFIG names nothing else; otherwise they say it.
    let env = std::env::var_os("ROLLCALL_CONFIG");
    let found = match &env {
        Some(named) => Path::new(named) == path,
        None => path == Path::new(DEFAULT_CONFIG_PATH),
    };
    let config_flag = if found {
        String::new()
    } else {
        format!(" --config {}", shell_word(&path.to_string_lossy()))
    };
    println!();
    println!(
        "The configuration reads {} into one list and keeps it\n\
         in the sandbox tenant on 127.0.0.1:{}; state goes to an SQLite file beside it.\n\
         Next, in this folder:",
        example.join(EXAMPLE_CSV).display(),
        args.sandbox_port
    );
    println!();
    for command in next_commands(&example, args.sandbox_port, &config_flag) {
        println!("  {command}");
    }
    println!();
    println!(
        "Then `rollcall{config_flag} status` shows the run, and `rollcall{config_flag} run` \
         again changes nothing.\nFor your own tenant, see README \"Connecting a real tenant\"."
    );
    Ok(Exit::Success)
}

/// The three commands that start the sandbox and run against it.
pub fn next_commands(example: &Path, port: u16, config_flag: &str) -> [String; 3] {
    let seed = example.join(EXAMPLE_SEED);
    [
        format!(
            "rollcall sandbox --port {port} --seed {} &",
            shell_word(&seed.to_string_lossy())
        ),
        format!("rollcall{config_flag} plan"),
        format!("rollcall{config_flag} run"),
    ]
}

/// `word` as one shell word: as it is when it needs no quoting, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn write(file: &Written) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if file.owner_only {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut out = options
        .open(&file.path)
        .with_context(|| format!("cannot write {}", file.path.display()))?;
    #[cfg(unix)]
    if file.owner_only {
        // An existing file (--force) keeps its mode on open; a secret must not stay readable.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} owner-only", file.path.display()))?;
    }
    out.write_all(file.text.as_bytes())
        .with_context(|| format!("cannot write {}", file.path.display()))
}

/// The starter configuration, every path relative to its own folder.
pub fn starter_config(port: u16) -> String {
    let sandbox = SandboxOptions::default();
    format!(
        r#"# rollcall.toml, written by `rollcall init`. `rollcall config check` validates it and
# prints every setting with its default; README "Configuration" describes each key.
# Relative paths are relative to this file's folder.

[state]
# Where rollcall keeps its journal and the last state of each list. SQLite suits one host;
# use postgres://… or mysql://… (url_env = "VAR" for a URL with a password) for more.
url = "sqlite://rollcall.db"

[graph]
# The built-in sandbox tenant: `rollcall sandbox --port {port} --seed {EXAMPLE_DIR}/{EXAMPLE_SEED}`.
# For a real tenant: your tenant id, the app registration's client id, a certificate
# (certificate_path) or secret, and remove endpoint and authority (README "Connecting a real
# tenant").
tenant_id = "{tenant}"
client_id = "{client}"
client_secret_file = "{EXAMPLE_DIR}/{EXAMPLE_SECRET}"
endpoint = "http://127.0.0.1:{port}/v1.0"
authority = "http://127.0.0.1:{port}"

[guard]
# A run that would remove more than this many members in all is stopped before any change.
max_removals_per_run = 500
# A list that would lose more than this share of its members is held (left as it is).
max_removal_percent_per_list = 50

# A family: lists of one kind and how their groups are named. {{list}} is the list's key.
[[family]]
name = "teams"
mail_nickname = "{{list}}"
display_name = "{{display_name}}"
description = "{{description}}"
create = true            # create a group for a list that has none
adopt_existing = false   # never take over a group rollcall did not create
on_vanish = "keep"       # a list gone from the source keeps its group and members

# A source: rows of (list, member[, display_name, description]) for one family.
[[source]]
name = "example"
family = "teams"
kind = "csv"             # sql | odbc | csv | ldap | entra (README "Sources")
path = "{EXAMPLE_DIR}/{EXAMPLE_CSV}"
member_key = "upn"       # upn | mail | employee_id | object_id

# [serve]                # `rollcall serve`: scheduled runs, a status page, /metrics
# listen = "127.0.0.1:9187"
# show_members = false   # the status page names no members unless this is true
"#,
        tenant = sandbox.tenant_id,
        client = sandbox.client_id,
    )
}

fn example_csv() -> String {
    let mut csv = String::from("list,member,display_name,description\n");
    let mut title = Some(("Example team", "Made by rollcall init"));
    for (upn, _, listed) in PEOPLE {
        if listed {
            let (name, description) = title.take().unwrap_or_default();
            csv.push_str(&format!("example-team,{upn},{name},{description}\n"));
        }
    }
    csv
}

/// The sandbox's directory: an account for each of the example's people.
fn example_seed() -> anyhow::Result<String> {
    let seed = Seed {
        users: PEOPLE
            .iter()
            .enumerate()
            .map(|(n, (upn, name, _))| SeedUser {
                id: format!("00000000-0000-4000-8000-{:012}", n + 1),
                user_principal_name: (*upn).to_owned(),
                mail: Some((*upn).to_owned()),
                display_name: (*name).to_owned(),
                ..SeedUser::default()
            })
            .collect(),
        groups: Vec::new(),
    };
    let mut text = serde_json::to_string_pretty(&seed).context("cannot write the seed")?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_configuration_loads_and_names_the_sandbox_port() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollcall.toml");
        std::fs::create_dir_all(dir.path().join(EXAMPLE_DIR)).unwrap();
        std::fs::write(
            dir.path().join(EXAMPLE_DIR).join(EXAMPLE_SECRET),
            "sandbox-secret\n",
        )
        .unwrap();
        std::fs::write(&path, starter_config(12345)).unwrap();
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let graph = config.graph.as_ref().unwrap();
        assert_eq!(graph.endpoint, "http://127.0.0.1:12345/v1.0");
        assert_eq!(config.sources.len(), 1);
        assert_eq!(
            config.sources[0].path.as_deref(),
            Some(dir.path().join(EXAMPLE_DIR).join(EXAMPLE_CSV).as_path())
        );
    }

    #[test]
    fn the_example_seed_has_an_account_for_everyone_on_the_list() {
        let seed: Seed = serde_json::from_str(&example_seed().unwrap()).unwrap();
        let csv = example_csv();
        let listed: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        assert_eq!(listed.len(), 3);
        for upn in listed {
            assert!(
                seed.users.iter().any(|u| u.user_principal_name == upn),
                "{upn} has no account"
            );
        }
    }

    #[test]
    fn paths_that_need_quoting_are_quoted_for_the_shell() {
        assert_eq!(
            shell_word("rollcall-example/x.json"),
            "rollcall-example/x.json"
        );
        assert_eq!(shell_word("/tmp/my lists/x"), "'/tmp/my lists/x'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}

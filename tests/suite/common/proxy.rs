//! A TCP proxy in front of a database server that a test can cut and restore, to take the
//! state database away from a running `rollcall` the way a maintenance shutdown does.
//!
//! Cut closes every open connection and closes the listening socket, so that new connections
//! are refused (ECONNREFUSED, as from a server that is down) rather than accepted and dropped.
//! Restore listens again on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A proxy from a loopback port to a database server.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    accepting: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy listens on a loopback port");
        let addr = listener.local_addr().expect("the proxy has an address");
        let mut proxy = Proxy {
            addr,
            upstream,
            accepting: None,
            connections: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// A proxy to the server a database URL names, and that URL rewritten to go through it.
    pub async fn in_front_of(url: &str) -> (Proxy, String) {
        let mut url = url::Url::parse(url).expect("the database URL parses");
        let host = url.host_str().expect("the database URL names a host");
        let port = url
            .port_or_known_default()
            .expect("the database URL names a port");
        let upstream = tokio::net::lookup_host((host, port))
            .await
            .expect("the database host resolves")
            .find(SocketAddr::is_ipv4)
            .expect("the database host has an IPv4 address");
        let proxy = Proxy::start(upstream).await;
        url.set_host(Some("127.0.0.1"))
            .expect("the URL takes a host");
        url.set_port(Some(proxy.addr.port()))
            .expect("the URL takes a port");
        (proxy, url.to_string())
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and stops listening: new connections are refused until
    /// [`Proxy::restore`].
    pub async fn cut(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
            // The listener is closed only once the aborted task is dropped.
            let _ = accepting.await;
        }
        let connections: Vec<_> = std::mem::take(&mut *self.connections.lock().expect("lock"));
        for connection in connections {
            connection.abort();
            let _ = connection.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) {
        assert!(self.accepting.is_none(), "the proxy was not cut");
        let listener = TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("the proxy cannot listen on {} again: {e}", self.addr));
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        let connections = self.connections.clone();
        self.accepting = Some(tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let forward = tokio::spawn(forward(client, upstream));
                let mut connections = connections.lock().expect("lock");
                connections.retain(|c| !c.is_finished());
                connections.push(forward);
            }
        }));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(accepting) = &self.accepting {
            accepting.abort();
        }
        for connection in self.connections.lock().expect("lock").iter() {
            connection.abort();
        }
    }
}

/// Copies bytes both ways until either side closes; a server that cannot be reached closes
/// the client's connection.
async fn forward(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

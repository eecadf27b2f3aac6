//! Loopback ports for test servers. Every port comes from [`TEST_PORTS`], below the kernel's
//! ephemeral range (32768 and up), so no outgoing connection takes one between the probe and
//! the server's bind. Each port is claimed with an flock on a file per port, held until the
//! test process exits (nextest runs every test in its own process), so parallel tests never
//! race for the same port. No test binds port 0.

use std::fs::File;
use std::net::TcpListener;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;

/// The range every test port is taken from.
pub const TEST_PORTS: Range<u16> = 10_000..20_000;

/// Locks held by this process, released when it exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A port free on 127.0.0.1 that no other test process holds.
pub fn free_port() -> u16 {
    free_port_on(&["127.0.0.1"])
}

/// A port free on every one of `addresses` (e.g. several loopback addresses of one sshd).
pub fn free_port_on(addresses: &[&str]) -> u16 {
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let offset = start_offset(span);
    for i in 0..span {
        let port = TEST_PORTS.start + (offset + i) % span;
        if let Some(lock) = claim(port, addresses) {
            hold(vec![lock]);
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?} on {addresses:?}");
}

/// Ports for a `lab` topology: node `i` listens on `base + 10*i` (API) and `base + 10*i + 1`
/// (cluster), as `lab --base-port` assigns them. Every one of those ports is locked like
/// [`free_port`]'s, so lab tests and node tests share one reservation scheme.
pub struct PortBlock {
    /// API port of the first node.
    pub base: u16,
}

impl PortBlock {
    /// The first block (a multiple of 100 in [`TEST_PORTS`]) whose ports for `nodes` nodes are
    /// free and unclaimed.
    pub fn new(nodes: u16) -> PortBlock {
        assert!(
            nodes <= 10,
            "a block of 100 ports holds at most 10 nodes, not {nodes}"
        );
        let blocks = (TEST_PORTS.end - TEST_PORTS.start) / 100;
        let offset = start_offset(blocks);
        for i in 0..blocks {
            let base = TEST_PORTS.start + (offset + i) % blocks * 100;
            let ports = (0..nodes).flat_map(|n| [base + 10 * n, base + 10 * n + 1]);
            let locks: Option<Vec<File>> = ports.map(|p| claim(p, &["127.0.0.1"])).collect();
            if let Some(locks) = locks {
                hold(locks);
                return PortBlock { base };
            }
        }
        panic!("no block of ports for {nodes} nodes in {TEST_PORTS:?}");
    }

    /// The base port as a `--base-port` argument.
    pub fn arg(&self) -> String {
        self.base.to_string()
    }
}

/// Where the per-port lock files live (shared by every test process of the machine).
fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("labnode-test-ports");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create the port lock directory {}: {e}", dir.display()));
    dir
}

/// The lock on `port` when nobody else holds it and it binds on every address.
fn claim(port: u16, addresses: &[&str]) -> Option<File> {
    let lock = File::create(lock_dir().join(port.to_string())).ok()?;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    let locked = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&lock),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } == 0;
    let free = locked && addresses.iter().all(|a| TcpListener::bind((*a, port)).is_ok());
    free.then_some(lock)
}

fn hold(locks: Vec<File>) {
    HELD.lock().unwrap_or_else(|e| e.into_inner()).extend(locks);
}

/// Where a search through `span` candidates starts, different per process, so parallel
/// tests do not all contend for the first port.
fn start_offset(span: u16) -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    ((std::process::id() ^ nanos) % u32::from(span)) as u16
}

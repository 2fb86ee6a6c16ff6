//! The network the members talk over, and the faults injected into it.
//!
//! Two modes:
//! - [`Net::Loopback`] (no root): every member listens on 127.0.0.1 with its own ports.
//!   Nothing can be cut, so network faults are refused with [`NetError::NeedsRoot`]; kill and
//!   pause still work.
//! - [`Net::Namespaces`] (root): one network namespace per member (`ip netns add`), each with
//!   a veth pair whose other end sits in a bridge in the root namespace. The harness creates a
//!   private /24 (`10.77.X.0/24`, X from the process id) for its own members only; the bridge
//!   holds `.1` (the clients, which run in the root namespace, connect through it) and member
//!   `i` holds `.(11 + i)`. Faults are iptables rules inside a member's namespace:
//!   `INPUT -s <peer> -j DROP` cuts the link from a peer (a partition is both directions),
//!   `OUTPUT -m statistic --probability p -j DROP` loses packets. Latency needs the kernel's
//!   `netem` qdisc (`tc qdisc ... netem delay`); kernels without it (this CI VM) get
//!   [`NetError::Unsupported`].
//!
//! A partition only drops traffic between member addresses: clients always reach every
//! member, as in Jepsen. Everything created here is removed on drop. This module does not
//! decide which faults to inject (the nemesis does) and never touches an address it did not
//! create.

use std::net::Ipv4Addr;
use std::process::Command;

/// A network fault the harness cannot inject here.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Namespaces and iptables need root; the run was started without it.
    #[error("network faults need root (network namespaces, iptables): run as root")]
    NeedsRoot,
    /// The kernel or the tools lack what the fault needs.
    #[error("network fault unsupported on this machine: {0}")]
    Unsupported(String),
    /// A setup or fault command failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// The members' network (see the module docs).
pub enum Net {
    /// Everything on 127.0.0.1; `port_base` + 10 * i is member i's client port (+1: peer).
    Loopback {
        /// The first member's client port.
        port_base: u16,
    },
    /// One namespace per member behind a bridge.
    Namespaces(Namespaces),
}

/// The namespaces, bridge and addresses of one run (root only).
pub struct Namespaces {
    prefix: String,
    subnet: u8,
    members: usize,
}

/// Runs a command, turning a failure into [`NetError::Command`].
fn run(program: &str, args: &[&str]) -> Result<(), NetError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: error.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(NetError::Command {
        command: format!("{program} {}", args.join(" ")),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// Whether this process runs as root (namespaces and iptables need it).
pub fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output();
    matches!(output, Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl Net {
    /// Loopback ports for `members` members, chosen from the process id so runs in parallel
    /// (tests) rarely collide.
    pub fn loopback() -> Net {
        let slot = (std::process::id() % 1500) as u16;
        Net::Loopback {
            port_base: 20000 + slot * 20,
        }
    }

    /// Creates one namespace per member and the bridge joining them.
    pub fn namespaces(members: usize) -> Result<Net, NetError> {
        if !is_root() {
            return Err(NetError::NeedsRoot);
        }
        let id = std::process::id();
        let ns = Namespaces {
            prefix: format!("jp{}", id % 100_000),
            subnet: (id % 250) as u8 + 1,
            members,
        };
        ns.create()?;
        Ok(Net::Namespaces(ns))
    }

    /// The address and ports member `i` serves on: (ip, client port, peer port).
    pub fn endpoint(&self, i: usize) -> (Ipv4Addr, u16, u16) {
        match self {
            Net::Loopback { port_base } => {
                let client = port_base + 10 * i as u16;
                (Ipv4Addr::LOCALHOST, client, client + 1)
            }
            Net::Namespaces(ns) => (ns.ip(i), 2379, 2380),
        }
    }

    /// The namespace member `i` must run in, if any.
    pub fn netns(&self, i: usize) -> Option<String> {
        match self {
            Net::Loopback { .. } => None,
            Net::Namespaces(ns) => Some(ns.netns(i)),
        }
    }

    /// The namespaces, or [`NetError::NeedsRoot`] in loopback mode.
    pub fn faults(&self) -> Result<&Namespaces, NetError> {
        match self {
            Net::Loopback { .. } => Err(NetError::NeedsRoot),
            Net::Namespaces(ns) => Ok(ns),
        }
    }
}

impl Namespaces {
    fn netns(&self, i: usize) -> String {
        format!("{}-n{}", self.prefix, i + 1)
    }

    fn bridge(&self) -> String {
        format!("{}-br", self.prefix)
    }

    fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.subnet, 11 + i as u8)
    }

    fn create(&self) -> Result<(), NetError> {
        // A harness killed with -9 leaves its namespaces behind; one with our process id is
        // ours to reuse.
        self.destroy();
        let bridge = self.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("10.77.{}.1/24", self.subnet),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for i in 0..self.members {
            let (netns, veth) = (self.netns(i), format!("{}-v{}", self.prefix, i + 1));
            run("ip", &["netns", "add", &netns])?;
            run(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
                ],
            )?;
            run("ip", &["link", "set", &veth, "master", &bridge, "up"])?;
            let address = format!("{}/24", self.ip(i));
            run(
                "ip",
                &["-n", &netns, "addr", "add", &address, "dev", "eth0"],
            )?;
            run("ip", &["-n", &netns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
        }
        // Fail now, not at the first partition, if iptables is missing.
        self.iptables(0, &["-F"])
            .map_err(|e| NetError::Unsupported(format!("iptables in a namespace: {e}")))
    }

    fn iptables(&self, i: usize, args: &[&str]) -> Result<(), NetError> {
        let netns = self.netns(i);
        let mut full = vec!["netns", "exec", &netns, "iptables", "-w"];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Drops every packet member `to` receives from member `from` (one direction).
    pub fn cut(&self, from: usize, to: usize) -> Result<(), NetError> {
        let source = self.ip(from).to_string();
        self.iptables(to, &["-A", "INPUT", "-s", &source, "-j", "DROP"])
    }

    /// Member `i` loses `percent`% of the packets it sends (to peers and clients).
    pub fn loss(&self, i: usize, percent: u32) -> Result<(), NetError> {
        let probability = format!("{:.2}", percent as f64 / 100.0);
        let args = [
            "-A",
            "OUTPUT",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &probability,
        ];
        let mut full = args.to_vec();
        full.extend_from_slice(&["-j", "DROP"]);
        self.iptables(i, &full)
    }

    /// Member `i` delays every packet it sends by `delay_ms` (needs `sch_netem`).
    pub fn latency(&self, i: usize, delay_ms: u32) -> Result<(), NetError> {
        let netns = self.netns(i);
        let delay = format!("{delay_ms}ms");
        let args = [
            "-n", &netns, "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", &delay,
        ];
        run("tc", &args).map_err(|e| NetError::Unsupported(format!("latency (tc netem): {e}")))
    }

    /// Removes every fault: flushes iptables and the qdisc in every namespace.
    pub fn heal(&self) -> Result<(), NetError> {
        for i in 0..self.members {
            self.iptables(i, &["-F"])?;
            // No netem qdisc installed is the usual case: ignore "nothing to delete".
            let _ = run(
                "tc",
                &["-n", &self.netns(i), "qdisc", "del", "dev", "eth0", "root"],
            );
        }
        Ok(())
    }

    /// Whether latency faults work here (a throwaway netem qdisc on member 0).
    pub fn supports_latency(&self) -> bool {
        let ok = self.latency(0, 1).is_ok();
        let _ = run(
            "tc",
            &["-n", &self.netns(0), "qdisc", "del", "dev", "eth0", "root"],
        );
        ok
    }

    /// Deletes the namespaces and the bridge, ignoring what does not exist.
    fn destroy(&self) {
        // Deleting a namespace deletes its veth end, which deletes the pair.
        for i in 0..self.members {
            let _ = run("ip", &["netns", "del", &self.netns(i)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.destroy();
    }
}

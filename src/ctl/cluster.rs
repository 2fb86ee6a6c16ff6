//! The shape of a local cluster for `raftkvctl cluster start N`: member names, ports, data
//! dirs and each member's etcd command-line flags.
//!
//! Pure computation: nothing here spawns or touches the disk (that is `supervisor.rs`), so
//! the flags a student's cluster gets can be read and tested without running it.
//!
//! Ports follow etcd's Procfile: member i (0-based) listens for clients on 2379, 22379,
//! 32379, ... and for peers on the next port (2380, 22380, 32380, ...). With `--base-port B`
//! they are packed instead: client `B + 2i`, peer `B + 2i + 1` (what tests use, on free ports).
//! Example, `cluster start 3`:
//!
//! ```text
//! m1  client http://127.0.0.1:2379   peer http://127.0.0.1:2380   data ./cluster.raftkv/m1
//! m2  client http://127.0.0.1:22379  peer http://127.0.0.1:22380  data ./cluster.raftkv/m2
//! m3  client http://127.0.0.1:32379  peer http://127.0.0.1:32380  data ./cluster.raftkv/m3
//! --initial-cluster m1=http://127.0.0.1:2380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380
//! ```

use std::path::{Path, PathBuf};

use super::error::CtlError;

/// The loopback address every member binds and advertises.
const HOST: &str = "127.0.0.1";
/// etcd's default client port, the first member's in the Procfile layout.
const PROCFILE_CLIENT_PORT: u32 = 2379;

/// One member of a local cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    /// `m1`, `m2`, ...
    pub name: String,
    /// Port for client gRPC/HTTP.
    pub client_port: u16,
    /// Port for Raft traffic between members.
    pub peer_port: u16,
    /// This member's `--data-dir`.
    pub data_dir: PathBuf,
}

impl MemberSpec {
    /// `127.0.0.1:<client port>`, the form etcdctl's `--endpoints` takes.
    pub fn endpoint(&self) -> String {
        format!("{HOST}:{}", self.client_port)
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("http://{HOST}:{}", self.client_port)
    }

    /// `http://127.0.0.1:<peer port>`.
    pub fn peer_url(&self) -> String {
        format!("http://{HOST}:{}", self.peer_port)
    }
}

/// A whole local cluster: its members and the token they share.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// The members, m1 first.
    pub members: Vec<MemberSpec>,
    /// `--initial-cluster-token`.
    pub token: String,
}

impl ClusterPlan {
    /// Lays out `count` members under `data_dir`, on Procfile ports or packed from `base_port`.
    pub fn new(
        count: usize,
        base_port: Option<u16>,
        data_dir: &Path,
        token: &str,
    ) -> Result<ClusterPlan, CtlError> {
        let out_of_range = || CtlError::PortsOutOfRange {
            members: count,
            base_port: base_port.unwrap_or(PROCFILE_CLIENT_PORT as u16),
        };
        let mut members = Vec::with_capacity(count);
        for i in 0..count {
            let client = match base_port {
                Some(base) => u32::from(base) + 2 * i as u32,
                None if i == 0 => PROCFILE_CLIENT_PORT,
                None => PROCFILE_CLIENT_PORT + 10_000 * (i as u32 + 1),
            };
            let client_port = u16::try_from(client).map_err(|_| out_of_range())?;
            let peer_port = u16::try_from(client + 1).map_err(|_| out_of_range())?;
            let name = format!("m{}", i + 1);
            members.push(MemberSpec {
                data_dir: data_dir.join(&name),
                name,
                client_port,
                peer_port,
            });
        }
        Ok(ClusterPlan {
            members,
            token: token.to_string(),
        })
    }

    /// `m1=http://127.0.0.1:2380,m2=...`: the `--initial-cluster` every member gets.
    pub fn initial_cluster(&self) -> String {
        let pairs: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        pairs.join(",")
    }

    /// The client endpoints, comma-separated, for `--endpoints`.
    pub fn endpoints(&self) -> String {
        let endpoints: Vec<String> = self.members.iter().map(MemberSpec::endpoint).collect();
        endpoints.join(",")
    }

    /// The etcd flags for `member`: the same flags start etcd or raftkv.
    pub fn member_args(&self, member: &MemberSpec) -> Vec<String> {
        let flag = |name: &str, value: String| [format!("--{name}"), value];
        [
            flag("name", member.name.clone()),
            flag("data-dir", member.data_dir.display().to_string()),
            flag("listen-client-urls", member.client_url()),
            flag("advertise-client-urls", member.client_url()),
            flag("listen-peer-urls", member.peer_url()),
            flag("initial-advertise-peer-urls", member.peer_url()),
            flag("initial-cluster", self.initial_cluster()),
            flag("initial-cluster-token", self.token.clone()),
            flag("initial-cluster-state", "new".to_string()),
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfile_ports_by_default() {
        let plan = ClusterPlan::new(5, None, Path::new("d"), "t").unwrap();
        let ports: Vec<(u16, u16)> = plan
            .members
            .iter()
            .map(|m| (m.client_port, m.peer_port))
            .collect();
        assert_eq!(
            ports,
            [
                (2379, 2380),
                (22379, 22380),
                (32379, 32380),
                (42379, 42380),
                (52379, 52380)
            ]
        );
        assert_eq!(plan.members[2].data_dir, Path::new("d/m3"));
    }

    #[test]
    fn base_port_packs_ports() {
        let plan = ClusterPlan::new(3, Some(40000), Path::new("d"), "t").unwrap();
        assert_eq!(
            plan.endpoints(),
            "127.0.0.1:40000,127.0.0.1:40002,127.0.0.1:40004"
        );
        assert_eq!(
            plan.initial_cluster(),
            "m1=http://127.0.0.1:40001,m2=http://127.0.0.1:40003,m3=http://127.0.0.1:40005"
        );
        assert!(ClusterPlan::new(3, Some(65533), Path::new("d"), "t").is_err());
    }

    #[test]
    fn member_args_are_etcd_flags() {
        let plan = ClusterPlan::new(1, None, Path::new("d"), "tok").unwrap();
        let args = plan.member_args(&plan.members[0]).join(" ");
        assert_eq!(
            args,
            "--name m1 --data-dir d/m1 --listen-client-urls http://127.0.0.1:2379 \
             --advertise-client-urls http://127.0.0.1:2379 \
             --listen-peer-urls http://127.0.0.1:2380 \
             --initial-advertise-peer-urls http://127.0.0.1:2380 \
             --initial-cluster m1=http://127.0.0.1:2380 --initial-cluster-token tok \
             --initial-cluster-state new"
        );
    }
}

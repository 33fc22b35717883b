//! etcd leadership before a member is restarted. Stopping the leader of a multi-member
//! cluster forces an election; for its length the other members answer `/health` false (no
//! leader, their quorum read times out), so a cluster of three briefly has fewer than two
//! healthy members. Moving the leadership first, while every member is up, avoids that: the
//! stop then takes away a follower.
//!
//! Over etcd's v3 gRPC gateway (etcd ≥ 3.4, JSON, uint64 IDs as decimal strings), on the
//! local member's client endpoint ([`Endpoint::EtcdClient`]) with the healthcheck client:
//! - `POST /v3/maintenance/status` → `header.member_id` (who answers) and `leader`;
//! - `POST /v3/cluster/member/list` → names, client URLs, `isLearner`;
//! - `GET /health` on each other voting member, to pick a healthy transferee;
//! - `POST /v3/maintenance/transfer-leadership` `{"targetID": "<id>"}`, sent to the leader
//!   (etcd's MoveLeader: answered once the transferee leads, or refused);
//! - then `status` again until the local member sees another leader, within the bound.
//!
//! Policy ([`move_leadership_off`]): not the leader, or a single member → nothing to do.
//! The leader, and the move fails (no healthy voting member to take over, the request is
//! refused, leadership does not move within the bound) → a [`LeadershipError`]: the restart
//! does not happen (stage `leadership:etcd`), since stopping the leader anyway is exactly
//! the election this step exists to avoid. The local member does not answer its status
//! (down, or serving a certificate the healthcheck client cannot verify: the very thing a
//! restart fixes) → `unknown`, reported with the reason, and the restart goes on.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::endpoints::{self, Endpoint};
use super::health::{self, budget, snippet, HealthOptions};
use super::tls::{HttpsClient, ProbeError};

/// What was found, and done, about the leadership of the member to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LeadershipAction {
    /// The member is a follower: nothing to move.
    NotLeader,
    /// The cluster has one member: there is no one to move the leadership to.
    SingleMember,
    /// The member led; the leadership was moved to another member before the stop.
    Transferred,
    /// The member did not answer its status: the leadership was not checked (see message).
    Unknown,
}

/// The leadership step of an etcd restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdLeadership {
    /// The local member (its name; its ID when it has none; its address when unknown).
    pub member: String,
    /// What was done.
    pub action: LeadershipAction,
    /// The member that leads after the transfer (action `transferred`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_to: Option<String>,
    /// What happened, naming the members.
    pub message: String,
}

/// Why the leadership could not be moved off the member to restart (nothing was stopped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeadershipError {
    /// No other voting member answered `/health` true.
    #[error(
        "etcd member {member} leads a cluster of {members} members and no other voting member \
         is healthy to take over ({detail}); not restarting it, which would force an election"
    )]
    NoTransferee {
        /// The leader.
        member: String,
        /// Members in the cluster.
        members: usize,
        /// What each candidate answered.
        detail: String,
    },
    /// The member list could not be read from the leader.
    #[error(
        "etcd member {member} leads, but its member list at {addr} could not be read: {detail}"
    )]
    MemberList {
        /// The leader.
        member: String,
        /// Its client address.
        addr: String,
        /// Why.
        detail: String,
    },
    /// The transfer request did not complete.
    #[error("etcd member {member} at {addr}: moving the leadership to {target} failed")]
    TransferRequest {
        /// The leader.
        member: String,
        /// Its client address.
        addr: String,
        /// The chosen transferee.
        target: String,
        /// The cause.
        #[source]
        source: Box<ProbeError>,
    },
    /// etcd refused the transfer.
    #[error(
        "etcd member {member} refused to move its leadership to {target}: HTTP {status}: {body}"
    )]
    TransferRefused {
        /// The leader.
        member: String,
        /// The chosen transferee.
        target: String,
        /// HTTP status.
        status: u16,
        /// etcd's answer.
        body: String,
    },
    /// The member still led (or saw no leader) at the end of the bound.
    #[error(
        "etcd member {member}: the leadership did not move to another member within {ms} ms \
         of the transfer to {target} ({last})"
    )]
    NotMoved {
        /// The leader.
        member: String,
        /// The chosen transferee.
        target: String,
        /// The bound.
        ms: u128,
        /// What the last status said.
        last: String,
    },
}

/// One member of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    id: u64,
    name: String,
    client_url: Option<String>,
    learner: bool,
}

impl Member {
    fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{:x}", self.id)
        } else {
            self.name.clone()
        }
    }
}

/// A uint64 of the gateway: a decimal string (or, tolerated, a JSON number).
fn id_of(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// `(member_id, leader)` of a status answer; `leader` 0 when the member sees none.
fn parse_status(body: &str) -> Option<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let me = id_of(&v["header"]["member_id"])?;
    // An absent `leader` is the proto default 0 (no leader), as the gateway omits defaults.
    let leader = if v.get("leader").is_none() {
        0
    } else {
        id_of(&v["leader"])?
    };
    Some((me, leader))
}

fn parse_members(body: &str) -> Option<Vec<Member>> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["members"]
        .as_array()?
        .iter()
        .map(|m| {
            Some(Member {
                id: id_of(&m["ID"])?,
                name: m["name"].as_str().unwrap_or("").to_string(),
                client_url: m["clientURLs"]
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(|u| u.as_str())
                    .and_then(endpoints::url_host_port),
                learner: m["isLearner"] == true,
            })
        })
        .collect()
}

/// The voting members other than `me`, in name order (who may take the leadership).
fn candidates(members: &[Member], me: u64) -> Vec<&Member> {
    let mut c: Vec<&Member> = members
        .iter()
        .filter(|m| m.id != me && !m.learner && m.client_url.is_some())
        .collect();
    c.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    c
}

fn post(
    client: &HttpsClient,
    addr: &str,
    path: &str,
    body: &str,
    deadline: Instant,
    cap: Duration,
) -> Result<(u16, String), ProbeError> {
    client.request(addr, "POST", path, Some(body), budget(deadline, cap))
}

/// Moves the leadership off the etcd member at the local client endpoint when it leads a
/// multi-member cluster, within `bound` (each request also within `o.request_timeout`).
/// See the module comment for the policy.
pub fn move_leadership_off(
    o: &HealthOptions,
    bound: Duration,
) -> Result<EtcdLeadership, LeadershipError> {
    let deadline = Instant::now() + bound;
    let addr = endpoints::resolve(
        Endpoint::EtcdClient,
        &o.cert_dir,
        &o.manifests_dir,
        &o.overrides,
    )
    .address;
    let unknown = |why: String| EtcdLeadership {
        member: addr.clone(),
        action: LeadershipAction::Unknown,
        transferred_to: None,
        message: format!(
            "the etcd member at {addr} did not answer its status ({why}): its leadership was \
             not checked; if it leads, the stop forces an election"
        ),
    };
    let client = match health::etcd_client(&o.cert_dir) {
        Ok(c) => c,
        Err(e) => {
            return Ok(unknown(format!(
                "cannot use the healthcheck client: {}",
                crate::error::report(&e)
            )))
        }
    };
    let cap = o.request_timeout;
    let status = |deadline: Instant| -> Result<(u64, u64), String> {
        match post(
            &client,
            &addr,
            "/v3/maintenance/status",
            "{}",
            deadline,
            cap,
        ) {
            Ok((200, b)) => {
                parse_status(&b).ok_or_else(|| format!("unexpected answer: {}", snippet(&b)))
            }
            Ok((code, b)) => Err(format!("HTTP {code}: {}", snippet(&b))),
            Err(e) => Err(crate::error::report(&e)),
        }
    };
    let (me, leader) = match status(deadline) {
        Ok(s) => s,
        Err(why) => return Ok(unknown(why)),
    };
    let members = match post(
        &client,
        &addr,
        "/v3/cluster/member/list",
        "{}",
        deadline,
        cap,
    ) {
        Ok((200, b)) => {
            parse_members(&b).ok_or_else(|| format!("unexpected answer: {}", snippet(&b)))
        }
        Ok((code, b)) => Err(format!("HTTP {code}: {}", snippet(&b))),
        Err(e) => Err(crate::error::report(&e)),
    };
    let name_of = |id: u64, list: &[Member]| {
        list.iter()
            .find(|m| m.id == id)
            .map(Member::label)
            .unwrap_or_else(|| format!("{id:x}"))
    };
    if leader != me {
        let list = members.as_deref().unwrap_or(&[]);
        let member = name_of(me, list);
        let message = if leader == 0 {
            format!("{member} is not the leader (it sees no leader now)")
        } else {
            format!(
                "{member} is a follower ({} leads): nothing to move",
                name_of(leader, list)
            )
        };
        return Ok(EtcdLeadership {
            member,
            action: LeadershipAction::NotLeader,
            transferred_to: None,
            message,
        });
    }
    let members = members.map_err(|detail| LeadershipError::MemberList {
        member: format!("{me:x}"),
        addr: addr.clone(),
        detail,
    })?;
    let member = name_of(me, &members);
    if members.len() <= 1 {
        return Ok(EtcdLeadership {
            message: format!(
                "{member} is the only member: there is no one to move the leadership to"
            ),
            member,
            action: LeadershipAction::SingleMember,
            transferred_to: None,
        });
    }
    // The first healthy voting member takes over.
    let mut tried = Vec::new();
    let mut target = None;
    for m in candidates(&members, me) {
        let Some(a) = m.client_url.as_deref() else {
            continue;
        };
        match client.request(a, "GET", "/health", None, budget(deadline, cap)) {
            Ok((200, b))
                if serde_json::from_str::<serde_json::Value>(&b)
                    .map(|j| j["health"] == "true" || j["health"] == true)
                    .unwrap_or(false) =>
            {
                target = Some(m);
                break;
            }
            Ok((code, b)) => tried.push(format!("{}: HTTP {code}: {}", m.label(), snippet(&b))),
            Err(e) => tried.push(format!("{}: {}", m.label(), crate::error::report(&e))),
        }
    }
    let Some(target) = target else {
        return Err(LeadershipError::NoTransferee {
            member,
            members: members.len(),
            detail: if tried.is_empty() {
                "no other voting member with a client URL".into()
            } else {
                tried.join("; ")
            },
        });
    };
    let body = format!(r#"{{"targetID":"{}"}}"#, target.id);
    match post(
        &client,
        &addr,
        "/v3/maintenance/transfer-leadership",
        &body,
        deadline,
        deadline.saturating_duration_since(Instant::now()),
    ) {
        Ok((200, _)) => {}
        Ok((status, b)) => {
            return Err(LeadershipError::TransferRefused {
                member,
                target: target.label(),
                status,
                body: snippet(&b),
            })
        }
        Err(source) => {
            return Err(LeadershipError::TransferRequest {
                member,
                addr,
                target: target.label(),
                source: Box::new(source),
            })
        }
    }
    // etcd answers once the transferee leads; confirm from the member to be stopped.
    let last = loop {
        let last = match status(deadline) {
            Ok((_, l)) if l != me && l != 0 => {
                let to = name_of(l, &members);
                return Ok(EtcdLeadership {
                    message: format!(
                        "{member} led the cluster: leadership moved to {to} before the stop"
                    ),
                    member,
                    action: LeadershipAction::Transferred,
                    transferred_to: Some(to),
                });
            }
            Ok((_, 0)) => "it sees no leader".to_string(),
            Ok(_) => "it still leads".to_string(),
            Err(e) => e,
        };
        if Instant::now() + Duration::from_millis(100) >= deadline {
            break last;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Err(LeadershipError::NotMoved {
        member,
        target: target.label(),
        ms: bound.as_millis(),
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Answers of etcd 3.4.23's gateway (header.member_id snake_case, uint64 as strings,
    // defaults such as isLearner=false omitted).
    const STATUS: &str = r#"{"header":{"cluster_id":"16317106440603665194","member_id":"15902408486233710876","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"28672","leader":"15902408486233710876","raftIndex":"8","raftTerm":"2","raftAppliedIndex":"8","dbSizeInUse":"24576"}"#;
    const LIST: &str = r#"{"header":{"cluster_id":"16317106440603665194","member_id":"15902408486233710876","raft_term":"2"},"members":[{"ID":"6891790697222481022","name":"node-2","peerURLs":["https://127.0.1.2:25467"],"clientURLs":["https://127.0.1.2:25466"]},{"ID":"15902408486233710876","name":"node-1","peerURLs":["https://127.0.1.1:25467"],"clientURLs":["https://127.0.1.1:25466"]},{"ID":"18388000250547001097","name":"node-3","peerURLs":["https://127.0.1.3:25467"],"clientURLs":["https://127.0.1.3:25466"],"isLearner":true},{"ID":"42","peerURLs":["https://127.0.1.4:25467"]}]}"#;

    #[test]
    fn status_and_members_of_the_gateway_parse() {
        assert_eq!(
            parse_status(STATUS),
            Some((15902408486233710876, 15902408486233710876))
        );
        // No leader: the field is omitted (proto default).
        assert_eq!(
            parse_status(r#"{"header":{"member_id":"7"}}"#),
            Some((7, 0))
        );
        assert_eq!(parse_status(r#"{"header":{}}"#), None);
        assert_eq!(parse_status("not json"), None);
        let m = parse_members(LIST).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].client_url.as_deref(), Some("127.0.1.2:25466"));
        assert!(m[2].learner && !m[0].learner);
        assert_eq!(m[3].label(), "2a");
        // Neither itself, nor a learner, nor an unstarted member takes over.
        let c = candidates(&m, 15902408486233710876);
        assert_eq!(
            c.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["node-2"]
        );
    }

    #[test]
    fn an_unreachable_member_is_unknown_not_an_error() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let d = tempfile::tempdir().unwrap();
        let (_t, root) = (d.path(), d.path());
        let mut o = HealthOptions::new(root, root);
        o.overrides = vec![super::super::endpoints::EndpointOverride {
            endpoint: Some(Endpoint::EtcdClient),
            address: Some(dead.clone()),
            cert: None,
        }];
        let l = move_leadership_off(&o, Duration::from_secs(2)).unwrap();
        assert_eq!(l.action, LeadershipAction::Unknown);
        assert_eq!(l.member, dead);
        assert!(
            l.message.starts_with(&format!(
                "the etcd member at {dead} did not answer its status (cannot use the healthcheck client"
            )),
            "{}",
            l.message
        );
    }
}

//! The audit log as a hash chain: each entry carries the hash of the entry before it and a
//! hash of its own content and that link, so an entry edited, deleted or moved in the database
//! afterwards breaks the chain where it happened. The rollout keeps the newest hash (its head)
//! beside its state, so a deleted newest entry shows too. Pure: the storage layer reads the
//! rows, this says whether and where they break.
//!
//! What a chain alone cannot stop: someone able to rewrite the database can recompute every
//! hash after an edit, or move the head back after deleting the newest entries. Three things
//! make that show: the head is signed (`head_mac`, an HMAC-SHA256 under a key the server keeps
//! outside the database), so a head the server never wrote fails; the stored state must be
//! the one the newest entry left (`state_follows`), so a database writer cannot un-kill a
//! rollout without also forging an entry; and the head is published outside the database
//! (launch reports, audit pages, kill notifications), so a third party holding an older head
//! sees a rewritten history from the API alone, recomputing the plain SHA-256 links.

use sha2::{Digest, Sha256};

/// The `prev` of a rollout's first entry.
pub const GENESIS: &str = "";

/// One audit entry as stored: what its hash covers, and the two hashes it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub seq: i64,
    pub rollout: String,
    pub at: i64,
    pub actor: String,
    pub role: String,
    pub action: String,
    /// The stored record, exactly as stored (its bytes are hashed, not a re-encoding).
    pub record: String,
    pub prev: Option<String>,
    pub hash: Option<String>,
}

/// The hash of an entry with this content following `prev`: SHA-256 in hex over `prev` and a
/// JSON array of the content fields (unambiguous however the fields are spelled).
pub fn hash(
    prev: &str,
    rollout: &str,
    at: i64,
    actor: &str,
    role: &str,
    action: &str,
    record: &str,
) -> String {
    let content = serde_json::json!([prev, rollout, at, actor, role, action, record]).to_string();
    let digest = Sha256::digest(content.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Link {
    fn expected_hash(&self) -> String {
        hash(
            self.prev.as_deref().unwrap_or(GENESIS),
            &self.rollout,
            self.at,
            &self.actor,
            &self.role,
            &self.action,
            &self.record,
        )
    }
}

/// Where and how a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// The entry's content (or its own hash) is not what was hashed when it was written.
    #[error("entry {seq} was changed after it was written: its hash does not match its content")]
    Edited { seq: i64 },
    /// The entry does not follow the one before it: an entry between them was deleted, or
    /// entries were moved.
    #[error("entry {seq} does not follow the entry before it: an entry was deleted or moved")]
    Unlinked { seq: i64 },
    /// The entry carries no hash: written around the server, or its hash was removed.
    #[error("entry {seq} carries no hash")]
    Unsealed { seq: i64 },
    /// The chain ends elsewhere than the rollout's head: its newest entries were deleted.
    #[error(
        "the chain ends at entry {last:?}, not at the rollout's head: its newest entries were deleted"
    )]
    Truncated { last: Option<i64> },
    /// The head carries no signature although the server signs every head it writes.
    #[error("the rollout's head is not signed: it was written around the server")]
    Unsigned,
    /// The head's signature is not the server's: the chain was rewritten and the head moved.
    #[error("the rollout's head is not signed by this server's audit key: the chain was rewritten")]
    Forged,
    /// The stored state is not the one the newest entry left.
    #[error(
        "the stored state is {stored}, but the newest entry ({seq}) left it {recorded}: the state was changed around the audit log"
    )]
    StateMismatch {
        seq: i64,
        recorded: String,
        stored: String,
    },
}

/// The signature of a rollout's head: HMAC-SHA256 under `key` of the rollout and its head.
pub fn head_mac(key: &[u8], rollout: &str, head: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(
        serde_json::json!(["cutover audit head", rollout, head])
            .to_string()
            .as_bytes(),
    );
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks the head's signature under `key`: a head must carry the server's signature.
pub fn verify_head(
    key: &[u8],
    rollout: &str,
    head: Option<&str>,
    mac: Option<&str>,
) -> Result<(), Break> {
    let Some(head) = head else {
        return Ok(());
    };
    let Some(mac) = mac else {
        return Err(Break::Unsigned);
    };
    // Compared whole: both are hex digests of one length.
    if head_mac(key, rollout, head) == mac {
        Ok(())
    } else {
        Err(Break::Forged)
    }
}

/// Whether the stored phase (`stored`, as `Phase` serialises) is the one the newest entry
/// recorded after it (`record`, the stored record text with its `after`).
pub fn state_follows(links: &[Link], stored: &str) -> Result<(), Break> {
    let Some(last) = links.last() else {
        return Ok(());
    };
    let recorded = serde_json::from_str::<serde_json::Value>(&last.record)
        .ok()
        .and_then(|r| r["after"]["phase"].as_str().map(str::to_string));
    match recorded {
        Some(recorded) if recorded != stored => Err(Break::StateMismatch {
            seq: last.seq,
            recorded,
            stored: stored.to_string(),
        }),
        _ => Ok(()),
    }
}

impl Break {
    /// The first entry that breaks (`None`: the break is past the last entry).
    pub fn seq(&self) -> Option<i64> {
        match self {
            Break::Edited { seq }
            | Break::Unlinked { seq }
            | Break::Unsealed { seq }
            | Break::StateMismatch { seq, .. } => Some(*seq),
            Break::Truncated { .. } | Break::Unsigned | Break::Forged => None,
        }
    }
}

/// Checks a rollout's entries, oldest first, against each other and against `head`, the
/// newest hash the rollout keeps (`None`: it has none, so it has no entries). Returns how many
/// entries hold, or the first break.
pub fn verify(links: &[Link], head: Option<&str>) -> Result<usize, Break> {
    let mut prev = GENESIS.to_string();
    for link in links {
        let (Some(own), Some(claimed_prev)) = (&link.hash, &link.prev) else {
            return Err(Break::Unsealed { seq: link.seq });
        };
        if *claimed_prev != prev {
            return Err(Break::Unlinked { seq: link.seq });
        }
        if *own != link.expected_hash() {
            return Err(Break::Edited { seq: link.seq });
        }
        prev.clone_from(own);
    }
    let ends = links.last().and_then(|l| l.hash.as_deref());
    if ends != head {
        return Err(Break::Truncated {
            last: links.last().map(|l| l.seq),
        });
    }
    Ok(links.len())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `n` entries chained as the server writes them; returns them and the head.
    fn chain(n: usize) -> (Vec<Link>, Option<String>) {
        let mut links = Vec::new();
        let mut prev = GENESIS.to_string();
        for i in 0..n {
            let mut link = Link {
                seq: 10 + 3 * i as i64,
                rollout: "r".into(),
                at: 1_000 * i as i64,
                actor: format!("person {}", i % 3),
                role: "operator".into(),
                action: ["start", "check", "progress", "kill"][i % 4].into(),
                record: format!("{{\"reason\":\"because {i}\"}}"),
                prev: Some(prev.clone()),
                hash: None,
            };
            link.hash = Some(link.expected_hash());
            prev = link.hash.clone().unwrap();
            links.push(link);
        }
        let head = links.last().and_then(|l| l.hash.clone());
        (links, head)
    }

    #[test]
    fn an_untouched_chain_holds_and_an_empty_one_too() {
        let (links, head) = chain(12);
        assert_eq!(verify(&links, head.as_deref()), Ok(12));
        assert_eq!(verify(&[], None), Ok(0));
    }

    #[test]
    fn a_head_the_key_never_signed_is_named() {
        let (links, head) = chain(3);
        let head = head.as_deref();
        let mac = head_mac(b"key", "r", head.unwrap());
        assert_eq!(verify_head(b"key", "r", head, Some(&mac)), Ok(()));
        assert_eq!(
            verify_head(b"other", "r", head, Some(&mac)),
            Err(Break::Forged)
        );
        assert_eq!(
            verify_head(b"key", "other", head, Some(&mac)),
            Err(Break::Forged)
        );
        assert_eq!(verify_head(b"key", "r", head, None), Err(Break::Unsigned));
        assert_eq!(
            verify_head(b"key", "r", None, None),
            Ok(()),
            "no entries yet"
        );
        // A rewritten chain (one entry dropped, the head moved to the new end) keeps the old
        // signature, which does not sign the new head.
        let moved = links[1].hash.as_deref();
        assert_eq!(
            verify_head(b"key", "r", moved, Some(&mac)),
            Err(Break::Forged)
        );
    }

    #[test]
    fn a_state_changed_around_the_log_is_named() {
        let (mut links, _) = chain(2);
        links[1].record = r#"{"after":{"phase":"killed","stage":null,"traffic":0.0}}"#.into();
        assert_eq!(state_follows(&links, "killed"), Ok(()));
        assert_eq!(
            state_follows(&links, "running"),
            Err(Break::StateMismatch {
                seq: links[1].seq,
                recorded: "killed".into(),
                stored: "running".into()
            })
        );
        assert_eq!(state_follows(&[], "running"), Ok(()));
    }

    #[test]
    fn a_deleted_newest_entry_shows_against_the_head() {
        let (mut links, head) = chain(5);
        links.pop();
        assert_eq!(
            verify(&links, head.as_deref()),
            Err(Break::Truncated { last: Some(19) })
        );
        assert!(verify(&[], head.as_deref()).is_err(), "every entry deleted");
    }

    proptest! {
        /// One edit of any field of any entry, a deletion or a swap of two entries' places:
        /// the first entry whose chain breaks is named.
        #[test]
        fn any_single_tampering_is_named_where_it_happened(
            n in 2usize..30,
            pick in any::<prop::sample::Index>(),
            other in any::<prop::sample::Index>(),
            how in 0u8..10,
        ) {
            let (mut links, head) = chain(n);
            let i = pick.index(n);
            let expected = match how {
                0 => { links[i].record.push(' '); Some(links[i].seq) }
                1 => { links[i].at += 1; Some(links[i].seq) }
                2 => { links[i].actor = "someone else".into(); Some(links[i].seq) }
                3 => { links[i].action = "progress2".into(); Some(links[i].seq) }
                4 => { links[i].role = "lead".into(); Some(links[i].seq) }
                5 => { links[i].hash = Some("0".repeat(64)); Some(links[i].seq) }
                6 => { links[i].prev = Some("0".repeat(64)); Some(links[i].seq) }
                7 => {
                    links.remove(i);
                    links.get(i).map(|l| l.seq)
                }
                8 => { links[i].hash = None; Some(links[i].seq) }
                _ => {
                    let j = other.index(n);
                    prop_assume!(i != j);
                    // Two rows trade places: their seqs stay in order, their contents swap.
                    let (a, b) = (i.min(j), i.max(j));
                    let seq_a = links[a].seq;
                    let seq_b = links[b].seq;
                    links.swap(a, b);
                    links[a].seq = seq_a;
                    links[b].seq = seq_b;
                    Some(seq_a)
                }
            };
            let found = verify(&links, head.as_deref()).expect_err("tampering went unseen");
            prop_assert_eq!(found.seq(), expected, "{}", found);
        }
    }
}

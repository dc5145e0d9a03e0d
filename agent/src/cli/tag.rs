//! `stash tag`: add, remove or set the tags of snapshots, as restic does: each changed
//! snapshot is saved anew with its old id in `original` (kept from an earlier
//! rewrite) and the old file removed.

use serde_json::json;
use stash_repo_format::{file_type::FileType, snapshot::Snapshot, Id};

use super::{filter::FilterArgs, Global};

/// Arguments of `tag`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to change (ids or prefixes; default: every one the filters pick).
    ids: Vec<String>,
    /// Tags to add (`a,b` adds both; repeatable).
    #[arg(long, value_name = "TAG[,TAG]")]
    add: Vec<String>,
    /// Tags to remove (repeatable).
    #[arg(long, value_name = "TAG[,TAG]")]
    remove: Vec<String>,
    /// Replace all tags with these (repeatable; `--set ''` removes every tag).
    #[arg(long, value_name = "TAG[,TAG]")]
    set: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

/// What to do with a snapshot's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set(Vec<String>),
    AddRemove {
        add: Vec<String>,
        remove: Vec<String>,
    },
}

fn split(lists: &[String]) -> Vec<String> {
    lists
        .iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

impl Change {
    /// The change the flags ask for.
    ///
    /// # Errors
    /// No change at all, or `--set` with `--add`/`--remove` (restic's refusals).
    pub fn from_flags(set: &[String], add: &[String], remove: &[String]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !set.is_empty() || !add.is_empty() || !remove.is_empty(),
            "nothing to do: give --add, --remove or --set"
        );
        anyhow::ensure!(
            set.is_empty() || (add.is_empty() && remove.is_empty()),
            "--set and --add/--remove cannot be given at the same time"
        );
        Ok(if set.is_empty() {
            Change::AddRemove {
                add: split(add),
                remove: split(remove),
            }
        } else {
            Change::Set(split(set))
        })
    }

    /// `tags` after the change, or `None` when nothing changes (then the snapshot is
    /// left as it is). The order is restic's, so both tools write the same list:
    /// added tags go to the end unless present, and a removed tag's place is taken by
    /// the last tag.
    pub fn apply(&self, tags: &[String]) -> Option<Vec<String>> {
        let next = match self {
            Change::Set(set) => set.clone(),
            Change::AddRemove { add, remove } => {
                let mut next = tags.to_vec();
                for t in add {
                    if !next.contains(t) {
                        next.push(t.clone());
                    }
                }
                for t in remove {
                    if let Some(i) = next.iter().position(|x| x == t) {
                        next.swap_remove(i);
                    }
                }
                next
            }
        };
        (next != tags).then_some(next)
    }
}

/// The snapshot saved in place of `old` (id `id`) with `tags`.
pub fn retagged(id: Id, old: &Snapshot, tags: Vec<String>) -> Snapshot {
    let mut next = old.clone();
    next.tags = tags;
    next.original = Some(old.original.unwrap_or(id));
    next
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let change = Change::from_flags(&a.set, &a.add, &a.remove)?;
    let repo = g.open().await?;
    let lock = repo.lock(false).await?;
    let result = async {
        let filter = a.filter.filter();
        let picked: Vec<(Id, Snapshot)> = if a.ids.is_empty() {
            repo.snapshots()
                .await?
                .into_iter()
                .filter(|(_, s)| filter.matches(s))
                .collect()
        } else {
            let mut picked = Vec::new();
            for name in &a.ids {
                picked.push(repo.find_snapshot(name, &filter).await?);
            }
            picked
        };
        let mut changed = 0usize;
        for (id, snap) in picked {
            let Some(tags) = change.apply(&snap.tags) else {
                continue;
            };
            let new_id = repo
                .save_json(FileType::Snapshot, &retagged(id, &snap, tags))
                .await?;
            repo.backend().remove(FileType::Snapshot, &id).await?;
            changed += 1;
            if g.json {
                g.print_json(&json!({
                    "message_type": "changed",
                    "old_snapshot_id": id.to_string(),
                    "new_snapshot_id": new_id.to_string(),
                }));
            } else if !g.quiet {
                println!("old snapshot ID: {id} -> new snapshot ID: {new_id}");
            }
        }
        anyhow::Ok(changed)
    }
    .await;
    lock.release().await?;
    let changed = result?;
    if g.json {
        g.print_json(&json!({"message_type": "summary", "changed_snapshots": changed}));
    } else if !g.quiet {
        match changed {
            0 => println!("no snapshots were modified"),
            n => println!("modified tags on {n} snapshots"),
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn flags_become_one_change_or_restics_refusal() {
        assert!(Change::from_flags(&[], &[], &[]).is_err());
        assert!(Change::from_flags(&s(&["a"]), &s(&["b"]), &[]).is_err());
        assert_eq!(
            Change::from_flags(&[], &s(&["a,b", "c"]), &s(&["d"])).unwrap(),
            Change::AddRemove {
                add: s(&["a", "b", "c"]),
                remove: s(&["d"])
            }
        );
        assert_eq!(
            Change::from_flags(&s(&[""]), &[], &[]).unwrap(),
            Change::Set(vec![])
        );
    }

    #[test]
    fn changes_order_tags_as_restic_does() {
        let add = Change::from_flags(&[], &s(&["b", "c"]), &s(&["a"])).unwrap();
        assert_eq!(
            add.apply(&s(&["a", "b"])),
            Some(s(&["c", "b"])),
            "restic's order"
        );
        assert_eq!(add.apply(&s(&["b", "c"])), None, "nothing to change");
        let both = Change::from_flags(&[], &s(&["a"]), &s(&["a"])).unwrap();
        assert_eq!(
            both.apply(&s(&["a", "b"])),
            Some(s(&["b"])),
            "added, then removed"
        );
        let set = Change::from_flags(&s(&["x,y"]), &[], &[]).unwrap();
        assert_eq!(set.apply(&s(&["a"])), Some(s(&["x", "y"])));
        assert_eq!(set.apply(&s(&["x", "y"])), None);
    }

    #[test]
    fn the_original_id_survives_later_rewrites() {
        let first = Id::from_hex(&"1".repeat(64)).unwrap();
        let second = Id::from_hex(&"2".repeat(64)).unwrap();
        let once = retagged(first, &Snapshot::default(), s(&["a"]));
        assert_eq!(once.original, Some(first));
        let twice = retagged(second, &once, s(&["b"]));
        assert_eq!(twice.original, Some(first));
        assert_eq!(twice.tags, s(&["b"]));
    }
}

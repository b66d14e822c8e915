//! Power loss: every store operation cut at every point of its filesystem trace, on the
//! strict crash state (only what was fsynced) and on seeded reorderings of the rest
//! (`src/storage/vfs_crash.rs` has the model). Each state is reopened as a restarted server
//! would: fsck must be clean, everything acknowledged must read back, and what was cut short
//! must be whole or absent (or finish when run again). `docs/reliability.md`, "Power loss".
//!
//! Two tests: the default write model (each file keeps a prefix of its unsynced writes, as ext4
//! `data=ordered` and xfs give), and the weak one (unsynced writes land in any subset, or as
//! zeros: ext4 without a journal, as on the machines this project runs on).
//!
//! `POWER_LOSS_SAMPLES=<n>` sets the reorderings per cut point (default 8);
//! `POWER_LOSS_SEED=<n>` replays a run (the seed is printed);
//! `POWER_LOSS_ONLY=<text>` runs only the operations whose name contains it.

mod power_loss_support;

use power_loss_support::{explore, scenarios, Sampling};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn every_cut_of_every_operation_keeps_what_was_acknowledged() {
    explore_all(false);
}

#[test]
fn every_cut_keeps_what_was_acknowledged_when_unsynced_writes_land_as_zeros() {
    explore_all(true);
}

fn explore_all(weak: bool) {
    let samples = env_u64("POWER_LOSS_SAMPLES").unwrap_or(8);
    let seed = env_u64("POWER_LOSS_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    let sampling = Sampling {
        samples,
        seed,
        weak,
    };
    println!("POWER_LOSS_SEED={seed} POWER_LOSS_SAMPLES={samples} weak={weak}");
    println!("| operation | mutations | states | failed |");
    println!("|---|---|---|---|");
    let (mut total, mut failures, mut first_trace) = (0, Vec::new(), None);
    let only = std::env::var("POWER_LOSS_ONLY").unwrap_or_default();
    for (name, mut op) in scenarios::all() {
        if !name.contains(&only) {
            continue;
        }
        let explored = explore(op.as_mut(), sampling);
        println!(
            "| {name} | {} | {} | {} |",
            explored.mutations,
            explored.states,
            explored.failures.len()
        );
        total += explored.states;
        if !explored.failures.is_empty() && first_trace.is_none() {
            first_trace = Some(format!("{name}:\n{}", explored.trace));
        }
        failures.extend(
            explored
                .failures
                .into_iter()
                .map(|f| format!("{name}: {f}")),
        );
    }
    println!("| all | | {total} | {} |", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {total} crash states failed (POWER_LOSS_SEED={seed}), first ones:\n{}\n\
         the first failing operation's mutations:\n{}",
        failures.len(),
        failures
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        first_trace.unwrap_or_default()
    );
}

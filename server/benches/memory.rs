//! Memory per rollout with eight days of buckets, for each of the five example plans, against
//! the same eight days kept in minutes (two tiers stretched to a week: what the store would
//! need without its 10 min tier) and against the three tiers with every sketch left dense (what
//! packing closed sketches saves), measured in the same run from the same seeded traffic. Heap
//! bytes are counted by jemalloc (the binary's allocator): what the store holds after importing the
//! history, nothing else.
//!
//! Run: `cargo bench -p cutover-server --bench memory` (in `./x bench`).

use cutover_core::plan::Plan;
use cutover_core::time::{DAY, MINUTE, Millis};
use cutover_core::window::{MetricStore, StoreConfig};
use cutover_server::sources::simulate::history;
use rand::SeedableRng;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes the program holds now, as jemalloc counts them.
fn allocated() -> isize {
    tikv_jemalloc_ctl::epoch::advance().expect("jemalloc's epoch");
    tikv_jemalloc_ctl::stats::allocated::read().expect("jemalloc's stats") as isize
}

const NOW: Millis = 1_800_000_000_000;
const SPAN: Millis = 8 * DAY;
/// Events per 10 s step in the newest hour, as the demo sends (`--rate 40`).
const PER_STEP: u32 = 400;

fn plans() -> Vec<Plan> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans");
    let mut plans: Vec<Plan> = std::fs::read_dir(dir)
        .expect("the example plans")
        .map(|entry| {
            let path = entry.expect("a plan file").path();
            let text = std::fs::read_to_string(&path).expect("readable");
            cutover_core::plan::parse(&path.display().to_string(), &text).expect("a valid plan")
        })
        .collect();
    plans.sort_by(|a, b| a.id.cmp(&b.id));
    plans
}

/// The heap a store of `config` holds with eight days of `plan`'s simulated traffic, and its
/// bucket count.
fn held(plan: &Plan, config: StoreConfig) -> (isize, usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x3eed);
    // Counted from before the history is made: what it builds on the way is freed by the end,
    // and the exported buckets are consumed by the import.
    let before = allocated();
    let (buckets, _) = history(plan, config, None, SPAN, NOW, PER_STEP, &mut rng);
    let kinds = plan.metrics.iter().map(|m| (m.id.clone(), m.kind));
    let mut store = MetricStore::new(config, kinds);
    store.import(buckets);
    store.compact(NOW);
    let bytes = allocated() - before;
    let count = store.bucket_count();
    drop(store);
    (bytes, count)
}

fn main() {
    let three = StoreConfig::keeping(SPAN);
    // What main kept before the 10 min tier: minutes for 25 hours, nothing older.
    let day = StoreConfig {
        broad: MINUTE,
        broad_retention: three.coarse_retention,
        pack_closed: false,
        ..three
    };
    // The same store with minutes where the 10 min tier is: two tiers stretched to 8 days.
    let minutes = StoreConfig {
        broad: MINUTE,
        pack_closed: false,
        ..three
    };
    let dense = StoreConfig {
        pack_closed: false,
        ..three
    };
    let mib = |b: isize| b as f64 / (1024.0 * 1024.0);
    let (mut before, mut unpacked, mut after) = (0, 0, 0);
    println!(
        "| plan | 25 h in minutes | 8 days in minutes | 8 days, three tiers, dense sketches | 8 days, three tiers, packed | buckets (8 days: minutes → tiers) |"
    );
    println!("|---|---|---|---|---|---|");
    for plan in plans() {
        let (d, _) = held(&plan, day);
        let (b, bn) = held(&plan, minutes);
        let (u, _) = held(&plan, dense);
        let (a, an) = held(&plan, three);
        before += b;
        unpacked += u;
        after += a;
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {bn} → {an} |",
            plan.id,
            mib(d),
            mib(b),
            mib(u),
            mib(a)
        );
    }
    println!(
        "ROW | memory of five rollouts with 8 days of buckets (`--bench memory`) | {:.1} MiB | {:.1} MiB kept in minutes | {:.2}x | bounded, under 1x",
        mib(after),
        mib(before),
        after as f64 / before as f64
    );
    println!(
        "ROW | the same, closed sketches packed (`--bench memory`) | {:.1} MiB | {:.1} MiB dense | {:.2}x | under 1x",
        mib(after),
        mib(unpacked),
        after as f64 / unpacked as f64
    );
}

//! A writer process killed with SIGKILL at random instants of many saves.
//!
//! The test binary runs itself as the writer (`checkpoint_writer_child`, a
//! no-op unless `WRITER_ROOT` is set). The writer loops: save
//! `<root>/run/step-<n>`, point the run's `latest` at it, replace
//! `<root>/export` in place with checkpoint `n`, print `committed <n>`. After
//! each kill the parent checks that the export loads and the run's latest
//! resolves, each to a checkpoint that was fully written, never older than
//! the last save the writer reported (or than what was seen before).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use candle_core::Device;
use ebm_core::checkpoint;

use super::{hidden_entries, number_of, save_numbered};

const WRITER_ROOT: &str = "EBM_CHECKPOINT_WRITER_ROOT";
const WRITER_START: &str = "EBM_CHECKPOINT_WRITER_START";
const KILLS: usize = 50;
const READY: &str = "writer ready";
const COMMITTED: &str = "committed ";

#[test]
fn checkpoint_writer_child() -> Result<()> {
    let Ok(root) = std::env::var(WRITER_ROOT) else {
        return Ok(()); // only meaningful as the child of the test below
    };
    let root = Path::new(&root);
    let start: u64 = std::env::var(WRITER_START)?.parse()?;
    let run = root.join("run");
    println!("{READY}");
    for n in start.. {
        let dir = checkpoint::step_dir(&run, n);
        save_numbered(&dir, n)?;
        checkpoint::mark_latest(&run, &dir, 3)?;
        save_numbered(&root.join("export"), n)?;
        println!("{COMMITTED}{n}");
    }
    Ok(())
}

/// xorshift64*: random kill instants, reproducible from the printed seed.
struct Delays(u64);

impl Delays {
    /// A number in `0..max`.
    fn below(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % max.max(1)
    }
}

/// Loads `what` and checks it holds a number in `low..=high`.
fn check_range(what: &str, loaded: Option<u64>, low: Option<u64>, high: u64) -> Result<()> {
    match (loaded, low) {
        (None, None) => Ok(()),
        (None, Some(low)) => anyhow::bail!("{what}: nothing loadable, expected {low}..={high}"),
        (Some(n), low) => {
            let low = low.unwrap_or(0);
            ensure!(
                (low..=high).contains(&n),
                "{what} holds checkpoint {n}, expected {low}..={high}"
            );
            Ok(())
        }
    }
}

#[test]
fn sigkill_at_random_instants_always_leaves_a_loadable_checkpoint() -> Result<()> {
    let seed = match std::env::var("EBM_CHECKPOINT_KILL_SEED") {
        Ok(s) => s.parse()?,
        Err(_) => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64
                | 1
        }
    };
    eprintln!("kill delays seed {seed} (set EBM_CHECKPOINT_KILL_SEED to replay)");
    let mut delays = Delays(seed);
    let tmp = tempfile::tempdir()?;
    let (run, export) = (tmp.path().join("run"), tmp.path().join("export"));
    let exe = std::env::current_exe()?;
    let began = Instant::now();
    // What the run's latest and the export were seen to hold so far.
    let (mut latest_seen, mut export_seen) = (None::<u64>, None::<u64>);
    let (mut committed_total, mut kills_with_leftovers) = (0, 0);
    // A running mean of the time one round of saves takes.
    let mut round = Duration::from_millis(5);
    for kill in 0..KILLS {
        let start = latest_seen.unwrap_or(0) + 1;
        let mut child = Command::new(&exe)
            .args(["--exact", "sigkill::checkpoint_writer_child", "--nocapture"])
            .env(WRITER_ROOT, tmp.path())
            .env(WRITER_START, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        // Let 0 to 2 rounds of saves finish, then kill at a random instant
        // of about one more round (timed on this machine, so the kills land
        // all over the saves however fast the disk is).
        let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
        let let_through = delays.below(3);
        let mut out = String::new();
        let mut seen = 0;
        let mut last_line_at = Instant::now();
        while seen < let_through || !out.contains(READY) {
            let line = lines.next().context("the writer stopped on its own")??;
            if line.contains(COMMITTED) {
                seen += 1;
                round = (round * 3 + last_line_at.elapsed()) / 4;
            }
            last_line_at = Instant::now();
            out.push_str(&line);
            out.push('\n');
        }
        let round_us = round.as_micros().max(1) as u64;
        std::thread::sleep(Duration::from_micros(delays.below(round_us * 3 / 2)));
        child.kill()?; // SIGKILL on Unix
        let status = child.wait()?;
        for line in lines {
            out.push_str(&line?);
            out.push('\n');
        }
        ensure!(
            status.code().is_none(),
            "the writer exited on its own ({status}) before kill {kill}: {out}"
        );
        let committed: Vec<u64> = out
            .lines()
            .filter_map(|l| l.split_once(COMMITTED)?.1.parse().ok())
            .collect();
        committed_total += committed.len();
        let last = committed.last().copied();
        // A save that began is at most one past the last reported one.
        let high = last.map_or(start, |n| n + 1);
        if !hidden_entries(tmp.path())?.is_empty()
            || !hidden_entries(&run).unwrap_or_default().is_empty()
        {
            kills_with_leftovers += 1;
        }

        let latest = match checkpoint::load_latest(&run, &Device::Cpu) {
            Ok(Some(l)) => Some(number_of(&l)?),
            Ok(None) => None,
            Err(e) => anyhow::bail!("kill {kill}: the run's latest does not resolve: {e}"),
        };
        check_range("the run's latest", latest, last.or(latest_seen), high)
            .with_context(|| format!("kill {kill}, writer output {out:?}"))?;
        let exported = match checkpoint::load(&export, &Device::Cpu) {
            Ok(l) => Some(number_of(&l)?),
            Err(e) if export_seen.is_some() || last.is_some() => {
                anyhow::bail!("kill {kill}: the export does not load: {e}")
            }
            Err(_) => None,
        };
        check_range("the export", exported, last.or(export_seen), high)
            .with_context(|| format!("kill {kill}, writer output {out:?}"))?;
        (latest_seen, export_seen) = (latest.or(latest_seen), exported.or(export_seen));
    }
    eprintln!(
        "{KILLS} kills in {:.1} s: {committed_total} rounds of saves reported, \
         {kills_with_leftovers} kills left leftovers of an interrupted save",
        began.elapsed().as_secs_f64()
    );
    ensure!(
        committed_total >= KILLS,
        "the writer got too few saves done to prove much"
    );

    // One more save of each removes what the killed writers left.
    let n = latest_seen.unwrap_or(0) + 1;
    let dir = checkpoint::step_dir(&run, n);
    save_numbered(&dir, n)?;
    checkpoint::mark_latest(&run, &dir, 3)?;
    save_numbered(&export, n)?;
    assert_eq!(hidden_entries(tmp.path())?, Vec::<String>::new());
    assert_eq!(hidden_entries(&run)?, Vec::<String>::new());
    Ok(())
}

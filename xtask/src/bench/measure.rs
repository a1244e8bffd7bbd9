//! Measuring one child process: wall time, CPU time (user + system) and peak resident
//! set, taken from `wait4` so they belong to that child alone; and the statistics over
//! several runs (median, minimum, maximum).
//!
//! Must not: interpret what the child does; callers decide what a run means.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of a child cost.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// User plus system time of the child (and any children it waited for).
    pub cpu: Duration,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Run `cmd` with stdout and stderr written to the given files and measure it. Fails
/// (quoting the end of stderr) if the child does not exit with status 0.
pub fn run(cmd: &mut Command, stdout: &Path, stderr: &Path) -> Result<Sample> {
    match run_limited(cmd, stdout, stderr, None)? {
        Run::Done(s) => Ok(s),
        Run::Stopped(_) => unreachable!("no limit"),
    }
}

/// How a limited run ended.
#[derive(Debug, Clone, Copy)]
pub enum Run {
    Done(Sample),
    /// Still running at the limit, then killed; its wall time so far (a lower bound).
    Stopped(Sample),
}

/// [`run`], killing the child (SIGKILL) if it is still running after `limit`.
pub fn run_limited(
    cmd: &mut Command,
    stdout: &Path,
    stderr: &Path,
    limit: Option<Duration>,
) -> Result<Run> {
    let out = File::create(stdout).with_context(|| format!("creating {}", stdout.display()))?;
    let err = File::create(stderr).with_context(|| format!("creating {}", stderr.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: all-zero is a valid `rusage` (plain integers and timevals).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut stopped = false;
    loop {
        let flags = if limit.is_some() && !stopped {
            libc::WNOHANG
        } else {
            0
        };
        // SAFETY: `pid` is our own unreaped child (std never waits for it: we do not call
        // `wait` on `child`), and both out-pointers point to live, writable locals.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == pid {
            break;
        }
        if r == 0 {
            // Still running (WNOHANG).
            if limit.is_some_and(|l| start.elapsed() >= l) {
                // SAFETY: signalling our own unreaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                stopped = true;
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
    let wall = start.elapsed();
    drop(child);
    let sample = Sample {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
    };
    if stopped {
        return Ok(Run::Stopped(sample));
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let text = std::fs::read_to_string(stderr).unwrap_or_default();
        let tail: String = text
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        bail!(
            "{:?} failed (wait status {status:#x}):\n{tail}",
            cmd.get_program()
        );
    }
    Ok(Run::Done(sample))
}

/// Median, minimum and maximum of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Stats {
    /// `None` for no values. The median of an even count is the mean of the middle two.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_middle_and_the_ends() {
        let s = Stats::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(Stats::of([4.0, 1.0]).unwrap().median, 2.5);
        assert!(Stats::of([]).is_none());
    }

    #[test]
    fn a_child_is_measured_and_a_failure_quotes_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let (o, e) = (dir.path().join("out"), dir.path().join("err"));
        // Burn a little CPU so the figures are not all zero.
        let s = run(
            Command::new("sh").args([
                "-c",
                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done",
            ]),
            &o,
            &e,
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&o).unwrap(), "done\n");
        assert!(s.wall > Duration::ZERO);
        assert!(s.cpu > Duration::ZERO);
        assert!(s.max_rss_kib > 0);
        let err = run(
            Command::new("sh").args(["-c", "echo broken >&2; exit 3"]),
            &o,
            &e,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("broken"), "{err:#}");
        let t = Instant::now();
        let stopped = run_limited(
            Command::new("sleep").arg("30"),
            &o,
            &e,
            Some(Duration::from_millis(200)),
        )
        .unwrap();
        assert!(matches!(stopped, Run::Stopped(s) if s.wall >= Duration::from_millis(200)));
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}

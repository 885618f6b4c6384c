//! CPU time of the processes under test, from `/proc/<pid>/stat` (user + system time
//! of every thread of the process, in clock ticks). Read at both ends of the measured
//! window, so warm-up, start-up and the other targets' rounds are not counted.

use std::fmt;
use std::str::FromStr;

/// A named group of processes whose CPU time is added up (nginx's master and
/// workers, for instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// The name printed in the report (`proxy`, `control-plane`, `upstream`...).
    pub label: String,
    /// The processes.
    pub pids: Vec<u32>,
}

impl FromStr for Watched {
    type Err = String;

    /// `LABEL=PID[,PID...]`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (label, pids) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected LABEL=PID[,PID...]"))?;
        if label.is_empty() {
            return Err(format!("{text:?}: the label is empty"));
        }
        let pids = pids
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{text:?}: {p:?} is not a process id"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Watched {
            label: label.to_owned(),
            pids,
        })
    }
}

/// A process could not be read: it exited, so the figures would be wrong.
#[derive(Debug)]
pub struct CpuError {
    pid: u32,
    detail: String,
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read the CPU time of process {} ({}): did it exit? Check its log",
            self.pid, self.detail
        )
    }
}

impl std::error::Error for CpuError {}

/// User + system clock ticks of each group, in the order given.
pub fn sample(watched: &[Watched]) -> Result<Vec<u64>, CpuError> {
    watched
        .iter()
        .map(|group| group.pids.iter().map(|&pid| ticks(pid)).sum())
        .collect()
}

/// User + system clock ticks of one process (all its threads).
pub fn ticks(pid: u32) -> Result<u64, CpuError> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| CpuError {
        pid,
        detail: e.to_string(),
    })?;
    parse_stat(&text).ok_or_else(|| CpuError {
        pid,
        detail: format!("unexpected format of {path}"),
    })
}

/// utime and stime are fields 14 and 15 of `/proc/<pid>/stat`; the command name
/// (field 2) may hold spaces and parentheses, so counting starts after its last `)`.
fn parse_stat(text: &str) -> Option<u64> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`AT_CLKTCK` of the auxiliary vector, which is what
/// `sysconf(_SC_CLK_TCK)` returns); 100, the Linux value, if it cannot be read.
pub fn ticks_per_second() -> u64 {
    const AT_CLKTCK: u64 = 17;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 100;
    };
    auxv.chunks_exact(16)
        .map(|pair| {
            let (key, value) = pair.split_at(8);
            (word(key), word(value))
        })
        .find(|(key, _)| *key == AT_CLKTCK)
        .map_or(100, |(_, value)| value)
}

fn word(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_ne_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let line = "4242 (tokio (w) 1) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 9 0";
        assert_eq!(parse_stat(line), Some(281));
    }

    #[test]
    fn this_process_is_readable() {
        assert!(ticks(std::process::id()).is_ok());
        // USER_HZ: 100 on x86-64 and arm64 whatever the kernel's HZ.
        assert_eq!(ticks_per_second(), 100);
    }

    #[test]
    fn watched_groups_parse() {
        let w: Watched = "nginx=10,11, 12".parse().unwrap();
        assert_eq!(w.label, "nginx");
        assert_eq!(w.pids, vec![10, 11, 12]);
        assert!("=1".parse::<Watched>().is_err());
        assert!("proxy".parse::<Watched>().is_err());
        assert!("proxy=x".parse::<Watched>().is_err());
    }
}

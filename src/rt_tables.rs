//! Names for managed tables in an iproute2 `rt_tables` file, so operators
//! can type `ip route show table rome-worker` as with upstream Liqo.
//!
//! The file is shared with the administrator and other tools, so routecfg
//! only ever edits lines it wrote itself. It recognises them by a trailing
//! `# routecfg` comment: iproute2 reads an entry as `ID NAME` and ignores
//! what follows (verified with iproute2 6.1: `ip route show table NAME`
//! resolves names from such lines). Ids are compared as numbers (decimal or
//! `0x` hex, as iproute2 accepts), never by substring, which is upstream's
//! bug: it took `2104125090 x` for table 210412509.
//!
//! Rewrites are atomic (temporary file in the same directory, fsync,
//! rename, fsync of the directory) so a crash never leaves iproute2 a
//! half-written file. Writers are assumed not to race: routecfg is the only
//! program that rewrites the file while it runs.

use crate::routing::Table;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where iproute2 looks for table names.
pub const DEFAULT_PATH: &str = "/etc/iproute2/rt_tables";

/// The trailing comment that marks a line as routecfg's.
pub const MARKER: &str = "# routecfg";

/// iproute2 reads each line into a 512-byte buffer: a longer line would
/// be split and misread, so names that would produce one are refused.
const MAX_LINE: usize = 511;

/// Names iproute2 knows without any file; a table must not reuse them.
const BUILTIN: [(u32, &str); 4] = [
    (0, "unspec"),
    (253, "default"),
    (254, "main"),
    (255, "local"),
];

/// An iproute2 `rt_tables` file holding names of managed tables.
#[derive(Clone, Debug)]
pub struct RtTables {
    path: PathBuf,
}

/// Which of routecfg's own lines that are not wanted any more to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale<'a> {
    /// Every routecfg line not wanted: the caller sees all tables that
    /// should be named (the rt_tables analogue of pruning by protocol).
    Unwanted,
    /// Only the lines for these ids: the caller knows which tables went
    /// away but not whether another routecfg process named the others.
    Ids(&'a [u32]),
}

/// What [`RtTables::sync`] did and what it refused to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether the file was rewritten.
    pub changed: bool,
    /// Ids whose routecfg line was written or rewritten.
    pub written: Vec<u32>,
    /// Ids whose routecfg line was removed.
    pub removed: Vec<u32>,
    /// Wanted names left out; the tables still work by number.
    pub warnings: Vec<RtTablesWarning>,
}

/// Why a wanted name was not written. Never fatal: names are a
/// convenience, routing does not depend on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtTablesWarning {
    /// A line routecfg did not write names this id differently; two names
    /// for one id would make `ip` print either.
    IdNamedElsewhere {
        id: u32,
        wanted: String,
        existing: String,
    },
    /// A line routecfg did not write (or iproute2 itself) uses this name
    /// for another id; one name for two ids would be ambiguous.
    NameTakenElsewhere {
        name: String,
        wanted_id: u32,
        existing_id: u32,
    },
    /// iproute2 could not read this entry back.
    Unrepresentable {
        id: u32,
        name: String,
        why: &'static str,
    },
    /// The wanted list gives this id or name twice, differently; the
    /// first one wins.
    DuplicateWanted { id: u32, name: String },
}

impl fmt::Display for RtTablesWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtTablesWarning::IdNamedElsewhere {
                id,
                wanted,
                existing,
            } => write!(
                f,
                "table {wanted} ({id}): id already named {existing:?} by a line routecfg did not write"
            ),
            RtTablesWarning::NameTakenElsewhere {
                name,
                wanted_id,
                existing_id,
            } => write!(
                f,
                "table {name} ({wanted_id}): name already used for table {existing_id} by a line routecfg did not write"
            ),
            RtTablesWarning::Unrepresentable { id, name, why } => {
                write!(
                    f,
                    "table {name:?} ({id}): cannot be named in rt_tables: {why}"
                )
            }
            RtTablesWarning::DuplicateWanted { id, name } => {
                write!(
                    f,
                    "table {name} ({id}): id or name wanted twice, first one kept"
                )
            }
        }
    }
}

/// A failed read or write of the file, with the step that failed.
#[derive(Debug)]
pub struct RtTablesError {
    pub path: PathBuf,
    pub action: &'static str,
    pub source: io::Error,
}

impl fmt::Display for RtTablesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rt_tables {}: {}: ", self.path.display(), self.action)?;
        match self.source.raw_os_error().and_then(errno_name) {
            Some(name) => write!(f, "{name} ({})", self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

impl std::error::Error for RtTablesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl RtTables {
    /// `path` is normally [`DEFAULT_PATH`]; tests and unusual hosts pass
    /// another one.
    pub fn new(path: PathBuf) -> Self {
        RtTables { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names every desired table and drops the lines of tables that were
    /// removed (and only those: another routecfg process may own the rest).
    pub fn sync_tables(
        &self,
        desired: &[Table],
        removed: &[u32],
    ) -> Result<SyncReport, RtTablesError> {
        let wanted: Vec<(u32, String)> = desired.iter().map(|t| (t.id, t.name.clone())).collect();
        self.sync(&wanted, Stale::Ids(removed))
    }

    /// Makes the file hold exactly one routecfg line for each `wanted`
    /// `(id, name)` that can be named without clashing with lines routecfg
    /// did not write, and removes routecfg's lines that `stale` selects.
    /// Other lines are kept byte for byte. The file (and its directory) is
    /// created only if there is something to write.
    pub fn sync(
        &self,
        wanted: &[(u32, String)],
        stale: Stale<'_>,
    ) -> Result<SyncReport, RtTablesError> {
        let target = self.target()?;
        let current = read(&target)?;
        let mut report = SyncReport::default();
        let lines = split_lines(current.as_deref().unwrap_or_default());
        let entries: Vec<Option<Entry>> = lines.iter().map(|l| Entry::parse(l)).collect();
        let to_write = choose(wanted, &entries, &mut report.warnings);

        let wanted_ids: BTreeSet<u32> = wanted.iter().map(|(id, _)| *id).collect();
        let written_names: HashMap<&str, u32> = to_write
            .iter()
            .map(|(id, name)| (name.as_str(), *id))
            .collect();
        let mut emitted = BTreeSet::new();
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(lines.len() + to_write.len());
        for (line, entry) in lines.iter().zip(&entries) {
            let Some(entry) = entry.as_ref().filter(|e| e.ours) else {
                out.push(line.to_vec());
                continue;
            };
            if let Some(name) = to_write.get(&entry.id) {
                if emitted.insert(entry.id) {
                    let canonical = canonical_line(entry.id, name);
                    if canonical.as_bytes() != *line {
                        report.written.push(entry.id);
                    }
                    out.push(canonical.into_bytes());
                    continue;
                }
            } else if !wanted_ids.contains(&entry.id)
                && !stale_selects(stale, entry.id)
                && written_names
                    .get(entry.name.as_str())
                    .is_none_or(|&id| id == entry.id)
            {
                out.push(line.to_vec());
                continue;
            }
            report.removed.push(entry.id);
        }
        for (id, name) in &to_write {
            if !emitted.contains(id) {
                out.push(canonical_line(*id, name).into_bytes());
                report.written.push(*id);
            }
        }

        // Dropping a duplicate of a line that stays is not a removal.
        report.removed.retain(|id| !to_write.contains_key(id));
        report.removed.sort_unstable();
        report.removed.dedup();
        report.written.sort_unstable();
        if out.iter().map(Vec::as_slice).eq(lines.iter().copied()) {
            return Ok(report);
        }
        let mut bytes = out.join(&b'\n');
        // Every kept line ends in a newline, a lone blank one too.
        if !out.is_empty() {
            bytes.push(b'\n');
        }
        write_atomically(&target, &bytes)?;
        report.changed = true;
        Ok(report)
    }

    /// Removes every line routecfg wrote, for uninstall or a process that
    /// stops managing tables. Returns whether the file changed; a missing
    /// file stays missing.
    pub fn remove_all_owned(&self) -> Result<bool, RtTablesError> {
        Ok(self.sync(&[], Stale::Unwanted)?.changed)
    }

    /// The `(id, name)` lines routecfg wrote, in file order, so a restarted
    /// process can tell which names it left behind.
    pub fn owned(&self) -> Result<Vec<(u32, String)>, RtTablesError> {
        let target = self.target()?;
        let current = read(&target)?.unwrap_or_default();
        Ok(split_lines(&current)
            .into_iter()
            .filter_map(Entry::parse)
            .filter(|e| e.ours)
            .map(|e| (e.id, e.name))
            .collect())
    }

    /// Every `(id, name)` line of the file, whoever wrote it, for naming
    /// tables in output as `ip` does.
    pub fn names(&self) -> Result<Vec<(u32, String)>, RtTablesError> {
        let current = read(&self.path)?.unwrap_or_default();
        Ok(split_lines(&current)
            .into_iter()
            .filter_map(Entry::parse)
            .map(|e| (e.id, e.name))
            .collect())
    }

    /// The file to rewrite: a symlink's target, so the link survives.
    fn target(&self) -> Result<PathBuf, RtTablesError> {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                fs::canonicalize(&self.path).map_err(|e| error(&self.path, "resolve symlink", e))
            }
            _ => Ok(self.path.clone()),
        }
    }
}

/// The wanted entries that will get a routecfg line, after dropping
/// the ones that clash or that iproute2 could not read.
fn choose(
    wanted: &[(u32, String)],
    entries: &[Option<Entry>],
    warnings: &mut Vec<RtTablesWarning>,
) -> BTreeMap<u32, String> {
    let mut foreign_ids: HashMap<u32, &str> = HashMap::new();
    let mut foreign_names: HashMap<&str, u32> = HashMap::new();
    let file_foreign = entries
        .iter()
        .flatten()
        .filter(|e| !e.ours)
        .map(|e| (e.id, e.name.as_str()));
    for (id, name) in BUILTIN.into_iter().chain(file_foreign) {
        foreign_ids.entry(id).or_insert(name);
        foreign_names.entry(name).or_insert(id);
    }

    let mut chosen = BTreeMap::new();
    let mut seen_ids: HashMap<u32, &str> = HashMap::new();
    let mut seen_names: HashMap<&str, u32> = HashMap::new();
    for (id, name) in wanted {
        let (id, name) = (*id, name.as_str());
        match (seen_ids.get(&id), seen_names.get(name)) {
            (Some(&n), _) if n == name => continue,
            (None, None) => {}
            _ => {
                warnings.push(RtTablesWarning::DuplicateWanted {
                    id,
                    name: name.to_string(),
                });
                continue;
            }
        }
        seen_ids.insert(id, name);
        seen_names.insert(name, id);
        if let Some(why) = unrepresentable(id, name) {
            warnings.push(RtTablesWarning::Unrepresentable {
                id,
                name: name.to_string(),
                why,
            });
            continue;
        }
        match (foreign_ids.get(&id), foreign_names.get(name)) {
            // Already named exactly so by someone else: nothing to add.
            (Some(&existing), _) if existing == name => {}
            (Some(&existing), _) => warnings.push(RtTablesWarning::IdNamedElsewhere {
                id,
                wanted: name.to_string(),
                existing: existing.to_string(),
            }),
            (None, Some(&existing_id)) => warnings.push(RtTablesWarning::NameTakenElsewhere {
                name: name.to_string(),
                wanted_id: id,
                existing_id,
            }),
            (None, None) => {
                chosen.insert(id, name.to_string());
            }
        }
    }
    chosen
}

/// One parsed `ID NAME [...]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    id: u32,
    name: String,
    ours: bool,
}

impl Entry {
    /// Parses a line the way iproute2 does: optional leading blanks, an id
    /// in decimal or `0x` hex, blanks, a name; comments and blank lines
    /// are not entries. Unparseable lines are not entries either and are
    /// kept untouched.
    fn parse(line: &[u8]) -> Option<Entry> {
        let line = std::str::from_utf8(line).ok()?;
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (id, rest) = line.split_once([' ', '\t'])?;
        let id = match id.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => id.parse().ok()?,
        };
        let rest = rest.trim_start_matches([' ', '\t']);
        let (name, tail) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
        let name = name.trim_end_matches('\r');
        if name.is_empty() {
            return None;
        }
        Some(Entry {
            id,
            name: name.to_string(),
            ours: tail.trim() == MARKER,
        })
    }
}

fn canonical_line(id: u32, name: &str) -> String {
    format!("{id}\t{name}\t{MARKER}")
}

fn stale_selects(stale: Stale<'_>, id: u32) -> bool {
    match stale {
        Stale::Unwanted => true,
        Stale::Ids(ids) => ids.contains(&id),
    }
}

/// Why iproute2 would not read `id name` back as written, if it would not.
fn unrepresentable(id: u32, name: &str) -> Option<&'static str> {
    if id > i32::MAX as u32 {
        return Some("iproute2 reads ids as signed 32-bit numbers");
    }
    if name.is_empty() {
        return Some("empty name");
    }
    if name.starts_with('#') {
        return Some("a name starting with '#' reads as a comment");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("whitespace or control characters split the entry");
    }
    if canonical_line(id, name).len() > MAX_LINE {
        return Some("line longer than iproute2's 511-byte line buffer");
    }
    None
}

/// The file's bytes, or `None` if it does not exist.
fn read(path: &Path) -> Result<Option<Vec<u8>>, RtTablesError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(error(path, "read", e)),
    }
}

/// Lines without their `\n`; a final line without newline is still a line.
fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.split(|&b| b == b'\n').collect()
}

/// Replaces `path` with `bytes` so readers see the old or the new file,
/// never a mix, keeping the old file's mode and owner.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RtTablesError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| error(&dir, "create directory", e))?;
    let old = match fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(error(path, "stat", e)),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{file_name}.routecfg-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| error(&temp, "create temporary file", e))?;
        file.write_all(bytes)
            .map_err(|e| error(&temp, "write", e))?;
        let mode = old
            .as_ref()
            .map_or(0o644, |m| m.permissions().mode() & 0o7777);
        if let Some(old) = &old {
            let mine = file.metadata().map_err(|e| error(&temp, "stat", e))?;
            if (mine.uid(), mine.gid()) != (old.uid(), old.gid()) {
                std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()))
                    .map_err(|e| error(&temp, "keep owner", e))?;
            }
        }
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| error(&temp, "keep mode", e))?;
        file.sync_all().map_err(|e| error(&temp, "fsync", e))?;
        fs::rename(&temp, path).map_err(|e| error(path, "rename temporary file over", e))
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist at all.
        let _ = fs::remove_file(&temp);
        return result;
    }
    // The rename is durable only once the directory entry is on disk.
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| error(&dir, "fsync directory", e))
}

fn error(path: &Path, action: &'static str, source: io::Error) -> RtTablesError {
    RtTablesError {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Names for the errnos file operations here can meet.
fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ELOOP => "ELOOP",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EDQUOT => "EDQUOT",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "routecfg-rt-tables-{test}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            TempDir(dir)
        }

        fn file(&self, content: &[u8]) -> RtTables {
            let path = self.0.join("rt_tables");
            fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            RtTables::new(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn contents(t: &RtTables) -> String {
        fs::read_to_string(t.path()).unwrap_or_else(|e| panic!("read {}: {e}", t.path().display()))
    }

    fn want(entries: &[(u32, &str)]) -> Vec<(u32, String)> {
        entries.iter().map(|(id, n)| (*id, n.to_string())).collect()
    }

    fn sync(t: &RtTables, entries: &[(u32, &str)], stale: Stale<'_>) -> SyncReport {
        t.sync(&want(entries), stale)
            .unwrap_or_else(|e| panic!("sync failed: {e}"))
    }

    const DEBIAN: &str = "#\n# reserved values\n#\n255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n#\n# local\n#\n#1\tinr.ruhep\n";

    #[test]
    fn creates_missing_file_and_directory() {
        let dir = TempDir::new("create");
        let t = RtTables::new(dir.0.join("etc/iproute2/rt_tables"));
        let r = sync(
            &t,
            &[(576_843_759, "milan"), (210_412_509, "rome-worker")],
            Stale::Unwanted,
        );
        assert!(r.changed);
        assert_eq!(r.written, vec![210_412_509, 576_843_759]);
        assert_eq!(
            contents(&t),
            "210412509\trome-worker\t# routecfg\n576843759\tmilan\t# routecfg\n"
        );
        let mode = fs::metadata(t.path()).map(|m| m.permissions().mode() & 0o7777);
        assert_eq!(mode.ok(), Some(0o644));
    }

    #[test]
    fn nothing_to_write_leaves_missing_file_missing() {
        let dir = TempDir::new("missing");
        let t = RtTables::new(dir.0.join("rt_tables"));
        assert!(!sync(&t, &[], Stale::Unwanted).changed);
        assert_eq!(t.remove_all_owned().ok(), Some(false));
        assert!(!t.path().exists());
    }

    #[test]
    fn a_lone_blank_line_is_kept() {
        let dir = TempDir::new("blank");
        let t = dir.file(b"\n");
        assert!(sync(&t, &[(210_412_509, "rome-worker")], Stale::Unwanted).changed);
        assert_eq!(contents(&t), "\n210412509\trome-worker\t# routecfg\n");
        assert!(sync(&t, &[], Stale::Unwanted).changed);
        assert_eq!(contents(&t), "\n");
        assert!(!sync(&t, &[], Stale::Unwanted).changed);
    }

    #[test]
    fn second_sync_does_not_rewrite() {
        let dir = TempDir::new("idempotent");
        let t = dir.file(DEBIAN.as_bytes());
        assert!(sync(&t, &[(210_412_509, "rome-worker")], Stale::Unwanted).changed);
        let inode = fs::metadata(t.path()).map(|m| m.ino()).ok();
        let again = sync(&t, &[(210_412_509, "rome-worker")], Stale::Unwanted);
        assert_eq!(again, SyncReport::default());
        assert_eq!(
            fs::metadata(t.path()).map(|m| m.ino()).ok(),
            inode,
            "file was replaced"
        );
    }

    #[test]
    fn foreign_lines_are_kept_byte_for_byte() {
        let dir = TempDir::new("foreign");
        let mut original = DEBIAN.as_bytes().to_vec();
        original.extend_from_slice(
            b"  100   admin\t# mine, not routecfg's\n\xff\xfe binary junk\n\n   \n0x65 hexy\r\n",
        );
        let t = dir.file(&original);
        sync(&t, &[(210_412_509, "rome-worker")], Stale::Unwanted);
        let mut expected = original.clone();
        expected.extend_from_slice(b"210412509\trome-worker\t# routecfg\n");
        assert_eq!(fs::read(t.path()).ok(), Some(expected));
    }

    #[test]
    fn appends_after_a_last_line_without_newline() {
        let dir = TempDir::new("no-newline");
        let t = dir.file(b"100\tadmin");
        sync(&t, &[(7, "seven")], Stale::Unwanted);
        assert_eq!(contents(&t), "100\tadmin\n7\tseven\t# routecfg\n");
    }

    #[test]
    fn ids_are_matched_exactly_not_by_substring() {
        // Upstream's substring match took each of these lines for
        // 210412509 rome-worker.
        let dir = TempDir::new("exact");
        let original = "2104125090\tother\n10412509\trome-worker-extcidr\n";
        let t = dir.file(original.as_bytes());
        let r = sync(&t, &[(210_412_509, "rome-worker")], Stale::Unwanted);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(
            contents(&t),
            format!("{original}210412509\trome-worker\t# routecfg\n")
        );
    }

    #[test]
    fn hex_ids_are_the_same_ids() {
        let dir = TempDir::new("hex");
        let original = format!("{:#x}\trome-worker\n", 210_412_509);
        let t = dir.file(original.as_bytes());
        let r = sync(&t, &[(210_412_509, "rome-worker")], Stale::Unwanted);
        assert!(!r.changed && r.warnings.is_empty(), "{r:?}");
        assert_eq!(contents(&t), original);
    }

    #[test]
    fn foreign_line_with_same_id_and_name_satisfies_without_duplicate() {
        // What upstream Liqo leaves behind: adopted as is, never removed.
        let dir = TempDir::new("adopt");
        let t = dir.file(b"576843759\tmilan\n");
        let r = sync(&t, &[(576_843_759, "milan")], Stale::Unwanted);
        assert_eq!(r, SyncReport::default());
        assert_eq!(contents(&t), "576843759\tmilan\n");
        assert!(!t.remove_all_owned().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(contents(&t), "576843759\tmilan\n");
    }

    #[test]
    fn foreign_line_with_same_id_other_name_is_left_alone_with_warning() {
        let dir = TempDir::new("id-clash");
        let t = dir.file(b"576843759\tadmin-name\n");
        let r = sync(&t, &[(576_843_759, "milan"), (7, "seven")], Stale::Unwanted);
        assert_eq!(
            r.warnings,
            vec![RtTablesWarning::IdNamedElsewhere {
                id: 576_843_759,
                wanted: "milan".into(),
                existing: "admin-name".into()
            }]
        );
        assert_eq!(r.written, vec![7]);
        assert_eq!(
            contents(&t),
            "576843759\tadmin-name\n7\tseven\t# routecfg\n"
        );
    }

    #[test]
    fn name_used_for_another_id_is_not_reused() {
        let dir = TempDir::new("name-clash");
        let t = dir.file(b"100\tmilan\n");
        let r = sync(&t, &[(576_843_759, "milan")], Stale::Unwanted);
        assert_eq!(
            r.warnings,
            vec![RtTablesWarning::NameTakenElsewhere {
                name: "milan".into(),
                wanted_id: 576_843_759,
                existing_id: 100
            }]
        );
        assert!(!r.changed);
    }

    #[test]
    fn builtin_names_and_ids_are_foreign_even_without_a_file() {
        let dir = TempDir::new("builtin");
        let t = RtTables::new(dir.0.join("rt_tables"));
        let r = sync(&t, &[(5, "main"), (254, "mine")], Stale::Unwanted);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(!r.changed && !t.path().exists());
    }

    #[test]
    fn unrepresentable_entries_are_refused() {
        let dir = TempDir::new("invalid");
        let t = dir.file(b"");
        let long = "x".repeat(500);
        let cases = [
            (1 << 31, "big"),
            (5, ""),
            (6, "#hash"),
            (7, "two words"),
            (8, "tab\there"),
            (9, long.as_str()),
        ];
        let r = sync(&t, &cases, Stale::Unwanted);
        let refused: Vec<u32> = r
            .warnings
            .iter()
            .map(|w| match w {
                RtTablesWarning::Unrepresentable { id, .. } => *id,
                other => panic!("unexpected warning {other:?}"),
            })
            .collect();
        assert_eq!(refused, vec![1 << 31, 5, 6, 7, 8, 9]);
        assert!(!r.changed);
        assert_eq!(contents(&t), "");
    }

    #[test]
    fn conflicting_wanted_entries_keep_the_first() {
        let dir = TempDir::new("dup-wanted");
        let t = RtTables::new(dir.0.join("rt_tables"));
        let r = sync(
            &t,
            &[(7, "seven"), (7, "seven"), (7, "other"), (8, "seven")],
            Stale::Unwanted,
        );
        assert_eq!(
            r.warnings,
            vec![
                RtTablesWarning::DuplicateWanted {
                    id: 7,
                    name: "other".into()
                },
                RtTablesWarning::DuplicateWanted {
                    id: 8,
                    name: "seven".into()
                },
            ]
        );
        assert_eq!(contents(&t), "7\tseven\t# routecfg\n");
    }

    #[test]
    fn own_lines_are_deduplicated_renamed_in_place_and_pruned() {
        let dir = TempDir::new("own");
        let t = dir.file(
            b"7\told-name\t# routecfg\n100\tadmin\n7 seven   # routecfg\n9\tgone\t# routecfg\n8\teight\t# routecfg\n",
        );
        let r = sync(&t, &[(7, "seven"), (8, "eight")], Stale::Unwanted);
        assert_eq!((r.written.clone(), r.removed.clone()), (vec![7], vec![9]));
        assert_eq!(
            contents(&t),
            "7\tseven\t# routecfg\n100\tadmin\n8\teight\t# routecfg\n"
        );
    }

    #[test]
    fn stale_ids_remove_only_the_listed_own_lines() {
        let dir = TempDir::new("stale-ids");
        let t = dir.file(b"7\tseven\t# routecfg\n9\tnine\t# routecfg\n10\tten\t# routecfg\n");
        let r = sync(&t, &[(7, "seven")], Stale::Ids(&[9, 11]));
        assert_eq!(r.removed, vec![9]);
        assert_eq!(contents(&t), "7\tseven\t# routecfg\n10\tten\t# routecfg\n");
    }

    #[test]
    fn kept_own_line_gives_way_to_a_wanted_name() {
        let dir = TempDir::new("rename-id");
        let t = dir.file(b"9\tshared\t# routecfg\n");
        let r = sync(&t, &[(7, "shared")], Stale::Ids(&[]));
        assert_eq!((r.written, r.removed), (vec![7], vec![9]));
        assert_eq!(contents(&t), "7\tshared\t# routecfg\n");
    }

    #[test]
    fn remove_all_owned_keeps_foreign_lines() {
        let dir = TempDir::new("remove-all");
        let t = dir
            .file(format!("{DEBIAN}7\tseven\t# routecfg\n100\tadmin # routecfg-ish\n").as_bytes());
        assert_eq!(t.owned().ok(), Some(vec![(7, "seven".to_string())]));
        assert_eq!(t.remove_all_owned().ok(), Some(true));
        assert_eq!(contents(&t), format!("{DEBIAN}100\tadmin # routecfg-ish\n"));
        assert_eq!(t.owned().ok(), Some(vec![]));
    }

    #[test]
    fn mode_is_preserved_and_no_temporary_file_is_left() {
        let dir = TempDir::new("mode");
        let t = dir.file(b"100\tadmin\n");
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o640))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        assert!(sync(&t, &[(7, "seven")], Stale::Unwanted).changed);
        let mode = fs::metadata(t.path()).map(|m| m.permissions().mode() & 0o7777);
        assert_eq!(mode.ok(), Some(0o640));
        let names: Vec<String> = fs::read_dir(&dir.0)
            .unwrap_or_else(|e| panic!("list: {e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(names, vec!["rt_tables".to_string()]);
    }

    #[test]
    fn symlink_is_followed_and_kept() {
        let dir = TempDir::new("symlink");
        let real = dir.0.join("real_rt_tables");
        fs::write(&real, "100\tadmin\n").unwrap_or_else(|e| panic!("write: {e}"));
        let link = dir.0.join("rt_tables");
        std::os::unix::fs::symlink(&real, &link).unwrap_or_else(|e| panic!("symlink: {e}"));
        let t = RtTables::new(link.clone());
        assert!(sync(&t, &[(7, "seven")], Stale::Unwanted).changed);
        let is_link = fs::symlink_metadata(&link).map(|m| m.file_type().is_symlink());
        assert_eq!(is_link.ok(), Some(true));
        assert_eq!(
            fs::read_to_string(&real).ok().as_deref(),
            Some("100\tadmin\n7\tseven\t# routecfg\n")
        );
    }

    #[test]
    fn errors_name_the_path_the_step_and_the_errno() {
        let dir = TempDir::new("error");
        let blocker = dir.0.join("not-a-dir");
        fs::write(&blocker, "").unwrap_or_else(|e| panic!("write: {e}"));
        let t = RtTables::new(blocker.join("rt_tables"));
        let err = match t.sync(&want(&[(7, "seven")]), Stale::Unwanted) {
            Ok(r) => panic!("sync under a regular file succeeded: {r:?}"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(text.contains("ENOTDIR"), "{text}");
        assert!(text.contains(&blocker.display().to_string()), "{text}");
        assert!(text.contains("read"), "{text}");
    }

    /// Checks the marker claim against the real iproute2: the synced file
    /// is copied onto a tmpfs mounted over /etc/iproute2 inside a private
    /// mount and network namespace (`unshare -m -n`), so neither the host's
    /// file nor its routing is touched. Needs root, `unshare` and `ip`.
    #[test]
    fn iproute2_resolves_names_from_synced_file_requires_root() {
        let dir = TempDir::new("iproute2");
        let t = dir.file(DEBIAN.as_bytes());
        sync(
            &t,
            &[(210_412_509, "rome-worker"), (576_843_759, "milan")],
            Stale::Unwanted,
        );
        let script = format!(
            "set -e; mount -t tmpfs none /etc/iproute2; cp {file} /etc/iproute2/rt_tables; \
             ip link set lo up; ip route add 10.9.9.0/24 dev lo table rome-worker; \
             ip route add 10.8.8.0/24 dev lo table 576843759; \
             ip route show table milan; ip route show table all",
            file = t.path().display()
        );
        let out = std::process::Command::new("unshare")
            .args(["-m", "-n", "--propagation", "private", "sh", "-c", &script])
            .output()
            .unwrap_or_else(|e| panic!("this test needs root and unshare(1) from util-linux: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "this test needs root (unshare -m -n, mount) and iproute2: {stderr}"
        );
        let lines: Vec<&str> = stdout.lines().collect();
        let milan_by_name = lines
            .first()
            .is_some_and(|l| l.starts_with("10.8.8.0/24 dev lo"));
        assert!(milan_by_name, "milan not resolved: {stdout}");
        let printed = |route: &str, name: &str| {
            lines
                .iter()
                .any(|l| l.starts_with(route) && l.contains(&format!(" table {name} ")))
        };
        assert!(printed("10.9.9.0/24", "rome-worker"), "{stdout}");
        assert!(printed("10.8.8.0/24", "milan"), "{stdout}");
    }
}

/// Entry for the `rt_tables` fuzz target (see `crate::fuzzing`).
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Syncs a file holding `bytes` twice: every line routecfg did not
    /// write is kept, in order, byte for byte; the second sync changes
    /// nothing.
    pub fn check_sync(bytes: &[u8]) {
        let path = std::env::temp_dir().join(format!("routecfg-fuzz-rt-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        fs::write(&path, bytes).expect("write scratch rt_tables");
        let t = RtTables::new(path.clone());
        let name = |i: u8| format!("fuzz{i}");
        let first = bytes.first().copied().unwrap_or(0) % 4;
        let wanted: Vec<(u32, String)> = (0..first)
            .map(|i| (crate::table_id::table_id(&name(i)), name(i)))
            .collect();
        t.sync(&wanted, Stale::Unwanted).expect("first sync");
        let after = fs::read(&path).expect("read back");
        let foreign: Vec<&[u8]> = split_lines(bytes)
            .into_iter()
            .filter(|l| !Entry::parse(l).is_some_and(|e| e.ours))
            .collect();
        let mut kept = split_lines(&after).into_iter();
        for line in foreign {
            assert!(
                kept.any(|l| l == line),
                "foreign line {:?} lost or reordered",
                String::from_utf8_lossy(line)
            );
        }
        let again = t.sync(&wanted, Stale::Unwanted).expect("second sync");
        assert!(!again.changed, "second sync rewrote the file");
        let _ = fs::remove_file(&path);
    }
}

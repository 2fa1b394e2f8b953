//! Bearer tokens that follow rotation.
//!
//! Kubelet rewrites projected ServiceAccount tokens well before they expire
//! (an atomic symlink swap); a long-running agent that read the token once
//! would start failing with 401 after about an hour. The file is stat'ed
//! before each request (cheap) and re-read when its modification time,
//! size or inode changed, and re-read unconditionally after a 401.

use std::cell::RefCell;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use super::KubeError;
use super::config::Auth;

type Stamp = (Option<SystemTime>, u64, u64);

struct Cached {
    stamp: Stamp,
    token: String,
}

/// Where the bearer token comes from, with the last value read.
pub(crate) struct TokenSource {
    auth: Auth,
    cached: RefCell<Option<Cached>>,
}

impl TokenSource {
    pub(crate) fn new(auth: Auth) -> TokenSource {
        TokenSource {
            auth,
            cached: RefCell::new(None),
        }
    }

    /// True when a 401 may be cured by reading the token again.
    pub(crate) fn can_reload(&self) -> bool {
        matches!(self.auth, Auth::TokenFile(_))
    }

    /// The token to send now, re-read if the file changed.
    pub(crate) fn current(&self) -> Result<Option<String>, KubeError> {
        self.get(false)
    }

    /// Re-reads the file whatever its metadata says (after a 401).
    pub(crate) fn reload(&self) -> Result<Option<String>, KubeError> {
        self.get(true)
    }

    fn get(&self, force: bool) -> Result<Option<String>, KubeError> {
        let path = match &self.auth {
            Auth::None => return Ok(None),
            Auth::Token(t) => return Ok(Some(t.clone())),
            Auth::TokenFile(p) => p,
        };
        let mut cached = self.cached.borrow_mut();
        let stamp = match stamp(path) {
            Ok(s) => s,
            Err(e) => {
                // Mid-rotation the file can be briefly absent: keep using
                // the token we have, the API server will tell us if it is
                // no longer good.
                if let Some(c) = cached.as_ref() {
                    log::warn!(
                        "kube: token file {}: {e}; keeping the previous token",
                        path.display()
                    );
                    return Ok(Some(c.token.clone()));
                }
                return Err(KubeError::Config(format!(
                    "token file {}: {e}",
                    path.display()
                )));
            }
        };
        if let Some(c) = cached.as_ref()
            && !force
            && c.stamp == stamp
        {
            return Ok(Some(c.token.clone()));
        }
        let token = read_token(path)?;
        if cached.as_ref().is_some_and(|c| c.token != token) {
            log::info!(
                "kube: token file {} changed, using the new token",
                path.display()
            );
        }
        *cached = Some(Cached {
            stamp,
            token: token.clone(),
        });
        Ok(Some(token))
    }
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok((m.modified().ok(), m.len(), m.ino()))
}

fn read_token(path: &Path) -> Result<String, KubeError> {
    let text = super::config::read_material(path)
        .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".to_string()))
        .map_err(|e| KubeError::Config(format!("token file {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(KubeError::Config(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    if token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(KubeError::Config(format!(
            "token file {}: token contains whitespace or control characters",
            path.display()
        )));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_token_follows_rewrites_and_survives_brief_absence() {
        let dir = std::env::temp_dir().join(format!("routecfg-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("token");
        std::fs::write(&path, "one\n").expect("write");
        let src = TokenSource::new(Auth::TokenFile(path.clone()));
        assert_eq!(src.current(), Ok(Some("one".to_string())));
        // A different length changes the stamp even within one mtime tick.
        std::fs::write(dir.join("new"), "second").expect("write");
        std::fs::rename(dir.join("new"), &path).expect("rename");
        assert_eq!(src.current(), Ok(Some("second".to_string())));
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(src.current(), Ok(Some("second".to_string())));
        std::fs::write(&path, "bad token").expect("write");
        assert!(src.reload().is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn static_and_none() {
        assert_eq!(TokenSource::new(Auth::None).current(), Ok(None));
        let t = TokenSource::new(Auth::Token("abc".into()));
        assert_eq!(t.reload(), Ok(Some("abc".to_string())));
        assert!(!t.can_reload());
        let missing = TokenSource::new(Auth::TokenFile("/nonexistent/token".into()));
        assert!(matches!(missing.current(), Err(KubeError::Config(_))));
    }
}

//! A paged list as a state machine: which page to ask for next, and what a
//! page's answer means. No I/O: the agent's loop runs each page through the
//! client, the blocking `Client::list` does the same in a loop.
//!
//! Lists are bounded: pages, items, bytes and the whole list's time all
//! have caps, and a continue token the server already sent is an error (an
//! endless continue chain cannot grow memory or keep the list going).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::KubeError;
use super::call::{ApiRequest, ApiResponse, CALL_TIMEOUT};
use super::requests::encode;

/// Caps for one whole list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    /// Items asked for per page (`limit=`).
    pub page_size: u32,
    pub max_pages: u32,
    pub max_items: usize,
    /// Response bytes over all pages.
    pub max_bytes: usize,
    /// Time for the whole list, all pages.
    pub deadline: Duration,
}

impl Default for ListLimits {
    fn default() -> Self {
        ListLimits {
            page_size: 500,
            max_pages: 1000,
            max_items: 100_000,
            max_bytes: 256 * 1024 * 1024,
            deadline: Duration::from_secs(60),
        }
    }
}

/// Times a list starts over after its continue token expired (410).
const MAX_RESTARTS: u32 = 2;

/// One list in progress.
#[derive(Debug)]
pub struct Pager {
    base: String,
    limits: ListLimits,
    deadline: Instant,
    items: Vec<Value>,
    bytes: usize,
    pages: u32,
    continue_token: Option<String>,
    seen_tokens: HashSet<String>,
    restarts: u32,
}

impl Pager {
    /// A list of `collection` (a path like `/apis/g/v1/things`) filtered by
    /// `label_selector` (empty: all).
    pub fn new(collection: &str, label_selector: &str, limits: ListLimits, now: Instant) -> Pager {
        let mut base = format!("{collection}?limit={}", limits.page_size);
        if !label_selector.is_empty() {
            base.push_str(&format!("&labelSelector={}", encode(label_selector)));
        }
        Pager {
            base,
            limits,
            deadline: now + limits.deadline,
            items: Vec::new(),
            bytes: 0,
            pages: 0,
            continue_token: None,
            seen_tokens: HashSet::new(),
            restarts: 0,
        }
    }

    /// The request for the next page, bounded by what is left of the
    /// list's time and byte budget.
    pub fn next_request(&self, now: Instant) -> Result<ApiRequest, KubeError> {
        let path = match &self.continue_token {
            Some(c) => format!("{}&continue={}", self.base, encode(c)),
            None => self.base.clone(),
        };
        let left = self.deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(self.error(
                &path,
                format!("list not finished within {:?}", self.limits.deadline),
            ));
        }
        let mut request = ApiRequest::get(path);
        request.timeout = left.min(CALL_TIMEOUT);
        request.max_response = self.limits.max_bytes.saturating_sub(self.bytes).max(1);
        Ok(request)
    }

    /// Takes one page's result: `Ok(None)` means ask for the next page,
    /// `Ok(Some((items, resourceVersion)))` means the list is complete.
    pub fn on_page(
        &mut self,
        path: &str,
        result: Result<ApiResponse, KubeError>,
        now: Instant,
    ) -> Result<Option<(Vec<Value>, String)>, KubeError> {
        let response = match result {
            Err(e) if e.is_gone() && self.continue_token.is_some() => {
                if self.restarts >= MAX_RESTARTS {
                    return Err(e);
                }
                self.restarts += 1;
                log::info!("kube: list continue token expired, listing again");
                self.items.clear();
                self.bytes = 0;
                self.pages = 0;
                self.continue_token = None;
                self.seen_tokens.clear();
                return Ok(None);
            }
            r => r?,
        };
        self.pages += 1;
        self.bytes += response.body.len();
        if self.pages > self.limits.max_pages {
            return Err(self.error(path, format!("more than {} pages", self.limits.max_pages)));
        }
        if self.bytes > self.limits.max_bytes {
            return Err(self.error(path, format!("more than {} bytes", self.limits.max_bytes)));
        }
        let mut page = response.json(path)?;
        let meta = page.get("metadata");
        let rv = meta
            .and_then(|m| m.get("resourceVersion"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let token = meta
            .and_then(|m| m.get("continue"))
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        match page.get_mut("items") {
            Some(Value::Array(items)) => {
                if self.items.len() + items.len() > self.limits.max_items {
                    return Err(
                        self.error(path, format!("more than {} items", self.limits.max_items))
                    );
                }
                self.items.append(items);
            }
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(KubeError::Decode {
                    path: path.to_string(),
                    message: "items is not a list".to_string(),
                });
            }
        }
        match token {
            Some(t) => {
                if !self.seen_tokens.insert(t.clone()) {
                    return Err(KubeError::Decode {
                        path: path.to_string(),
                        message: "the server sent the same continue token twice".to_string(),
                    });
                }
                self.continue_token = Some(t);
                if now >= self.deadline {
                    return Err(self.error(
                        path,
                        format!("list not finished within {:?}", self.limits.deadline),
                    ));
                }
                Ok(None)
            }
            None if rv.is_empty() => Err(KubeError::Decode {
                path: path.to_string(),
                message: "list without metadata.resourceVersion".to_string(),
            }),
            None => Ok(Some((std::mem::take(&mut self.items), rv))),
        }
    }

    fn error(&self, path: &str, message: String) -> KubeError {
        KubeError::Decode {
            path: path.to_string(),
            message: format!("list too large or endless: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: &[&str], cont: Option<&str>, rv: &str) -> Result<ApiResponse, KubeError> {
        let items: Vec<Value> = items
            .iter()
            .map(|n| serde_json::json!({"metadata": {"name": n}}))
            .collect();
        let mut meta = serde_json::json!({"resourceVersion": rv});
        if let Some(c) = cont {
            meta["continue"] = Value::from(c);
        }
        let body = serde_json::json!({"items": items, "metadata": meta});
        Ok(ApiResponse {
            status: 200,
            body: serde_json::to_vec(&body).expect("json"),
        })
    }

    fn names(items: &[Value]) -> Vec<&str> {
        items
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap_or(""))
            .collect()
    }

    #[test]
    fn pages_follow_continue_tokens() {
        let now = Instant::now();
        let mut p = Pager::new("/apis/g/v1/things", "a=b", ListLimits::default(), now);
        let r = p.next_request(now).expect("first");
        assert_eq!(r.path, "/apis/g/v1/things?limit=500&labelSelector=a%3Db");
        assert_eq!(
            p.on_page(&r.path, page(&["x"], Some("c/1"), "5"), now),
            Ok(None)
        );
        let r = p.next_request(now).expect("second");
        assert!(r.path.ends_with("&continue=c%2F1"), "{}", r.path);
        let done = p
            .on_page(&r.path, page(&["y"], None, "9"), now)
            .expect("ok")
            .expect("complete");
        assert_eq!(names(&done.0), ["x", "y"]);
        assert_eq!(done.1, "9");
    }

    #[test]
    fn a_repeated_continue_token_is_an_error() {
        let now = Instant::now();
        let mut p = Pager::new("/l", "", ListLimits::default(), now);
        assert_eq!(p.on_page("/l", page(&[], Some("same"), "1"), now), Ok(None));
        let e = p
            .on_page("/l", page(&[], Some("same"), "1"), now)
            .expect_err("loop");
        assert!(e.to_string().contains("same continue token"), "{e}");
    }

    #[test]
    fn caps_on_pages_items_bytes_and_time() {
        let now = Instant::now();
        let limits = ListLimits {
            max_pages: 3,
            ..ListLimits::default()
        };
        let mut p = Pager::new("/l", "", limits, now);
        for i in 0..3 {
            let t = format!("t{i}");
            assert_eq!(p.on_page("/l", page(&["a"], Some(&t), "1"), now), Ok(None));
        }
        assert!(p.on_page("/l", page(&["a"], Some("t9"), "1"), now).is_err());

        let limits = ListLimits {
            max_items: 2,
            ..ListLimits::default()
        };
        let mut p = Pager::new("/l", "", limits, now);
        assert!(
            p.on_page("/l", page(&["a", "b", "c"], None, "1"), now)
                .is_err()
        );

        let limits = ListLimits {
            max_bytes: 100,
            ..ListLimits::default()
        };
        let mut p = Pager::new("/l", "", limits, now);
        assert!(p.next_request(now).expect("req").max_response <= 100);
        let big: Vec<String> = (0..20).map(|i| format!("name-{i}")).collect();
        let big: Vec<&str> = big.iter().map(String::as_str).collect();
        assert!(p.on_page("/l", page(&big, None, "1"), now).is_err());

        let mut p = Pager::new("/l", "", ListLimits::default(), now);
        let later = now + Duration::from_secs(61);
        assert!(p.next_request(later).is_err());
        assert!(p.on_page("/l", page(&[], Some("x"), "1"), later).is_err());
        let r = p.next_request(now + Duration::from_secs(55)).expect("req");
        assert!(r.timeout <= Duration::from_secs(5));
    }

    #[test]
    fn expired_token_restarts_twice_then_fails() {
        let now = Instant::now();
        let mut p = Pager::new("/l", "", ListLimits::default(), now);
        let gone = || {
            Err(KubeError::Gone {
                path: "/l".into(),
                message: "expired".into(),
            })
        };
        for _ in 0..MAX_RESTARTS {
            assert_eq!(p.on_page("/l", page(&["a"], Some("t"), "1"), now), Ok(None));
            assert_eq!(p.on_page("/l", gone(), now), Ok(None));
            assert!(!p.next_request(now).expect("req").path.contains("continue"));
        }
        assert_eq!(p.on_page("/l", page(&["a"], Some("t"), "1"), now), Ok(None));
        assert!(p.on_page("/l", gone(), now).is_err());
        // Without a continue token, 410 is the caller's problem.
        let mut p = Pager::new("/l", "", ListLimits::default(), now);
        assert!(p.on_page("/l", gone(), now).is_err());
    }

    #[test]
    fn list_without_resource_version_or_with_bad_items_fails() {
        let now = Instant::now();
        let mut p = Pager::new("/l", "", ListLimits::default(), now);
        assert!(p.on_page("/l", page(&[], None, ""), now).is_err());
        let mut p = Pager::new("/l", "", ListLimits::default(), now);
        let bad = Ok(ApiResponse {
            status: 200,
            body: br#"{"items":{},"metadata":{"resourceVersion":"1"}}"#.to_vec(),
        });
        assert!(p.on_page("/l", bad, now).is_err());
    }
}

//! Which endpoint of a pool a request is for: by its host and exact path.
//!
//! An endpoint with `spec.ingress.host` H and path P serves (H, P); one
//! without a host serves P on every host no other endpoint claims for P.
//! Two endpoints claiming the same route: the one whose name sorts first
//! (its file sorts first) serves it, the other is reported as a conflict
//! and not served at all, so a later endpoint can never take over or share
//! another's deliveries.

use std::collections::{BTreeMap, HashMap};

/// Where an endpoint is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The host, lowercase without a port; `None`: any host not claimed.
    pub host: Option<String>,
    /// The exact path.
    pub path: String,
}

impl Route {
    /// `path` on `host` (normalized: [`normalize_host`]; `None`: any host
    /// not claimed).
    pub fn new(host: Option<&str>, path: &str) -> Self {
        Self {
            host: host.map(normalize_host),
            path: path.to_owned(),
        }
    }

    /// The route of `spec.ingress` (`None`: `/` on any host).
    pub fn of(ingress: Option<&hookwarden_crds::IngressSpec>) -> Self {
        match ingress {
            Some(ingress) => Self::new(Some(&ingress.host), &ingress.path),
            None => Self::new(None, "/"),
        }
    }
}

/// A route held by one endpoint and also claimed by another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The endpoint not served.
    pub endpoint: String,
    /// The endpoint that holds the route.
    pub held_by: String,
}

/// The routes of a pool's endpoints, `T` being what serves each.
#[derive(Debug)]
pub struct RouteTable<T> {
    exact: HashMap<(String, String), T>,
    any_host: HashMap<String, T>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            any_host: HashMap::new(),
        }
    }
}

impl<T> RouteTable<T> {
    /// The table of `endpoints` (name to route and server), the first name
    /// in order holding a contested route, and the conflicts.
    pub fn build(endpoints: BTreeMap<String, (Route, T)>) -> (Self, Vec<Conflict>) {
        let mut table = Self::default();
        let mut holders: HashMap<Route, String> = HashMap::new();
        let mut conflicts = Vec::new();
        for (name, (route, served)) in endpoints {
            if let Some(held_by) = holders.get(&route) {
                conflicts.push(Conflict {
                    endpoint: name,
                    held_by: held_by.clone(),
                });
                continue;
            }
            match &route.host {
                Some(host) => {
                    table
                        .exact
                        .insert((host.clone(), route.path.clone()), served);
                }
                None => {
                    table.any_host.insert(route.path.clone(), served);
                }
            }
            holders.insert(route, name);
        }
        (table, conflicts)
    }

    /// Adds `route` to `served` unless an endpoint already holds it; says
    /// whether it was added.
    pub fn insert_if_free(&mut self, route: &Route, served: T) -> bool {
        fn vacant<K: Eq + std::hash::Hash, T>(map: &mut HashMap<K, T>, key: K, value: T) -> bool {
            match map.entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(value);
                    true
                }
            }
        }
        match &route.host {
            Some(host) => vacant(&mut self.exact, (host.clone(), route.path.clone()), served),
            None => vacant(&mut self.any_host, route.path.clone(), served),
        }
    }

    /// What serves `path` on `host` (the request's `Host`, as sent).
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<&T> {
        host.map(normalize_host)
            .and_then(|host| self.exact.get(&(host, path.to_owned())))
            .or_else(|| self.any_host.get(path))
    }

    /// Everything served, in no order.
    pub fn served(&self) -> impl Iterator<Item = &T> {
        self.exact.values().chain(self.any_host.values())
    }

    /// How many routes are served.
    pub fn len(&self) -> usize {
        self.exact.len() + self.any_host.len()
    }

    /// Whether no route is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A host as routed: lowercase, without a port (`[v6]:port` keeps its
/// brackets) or a trailing dot.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, Option<&str>, &str)]) -> (RouteTable<String>, Vec<Conflict>) {
        RouteTable::build(
            entries
                .iter()
                .map(|(name, host, path)| {
                    (
                        (*name).to_owned(),
                        (Route::new(*host, path), (*name).to_owned()),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn exact_host_and_path() {
        let (table, conflicts) = table(&[
            ("a", Some("hooks.example.com"), "/github"),
            ("b", Some("hooks.example.com"), "/stripe"),
            ("c", Some("other.example.com"), "/github"),
        ]);
        assert!(conflicts.is_empty());
        let at = |host, path| table.lookup(host, path).map(String::as_str);
        assert_eq!(at(Some("hooks.example.com"), "/github"), Some("a"));
        assert_eq!(at(Some("HOOKS.Example.com:443"), "/github"), Some("a"));
        assert_eq!(at(Some("hooks.example.com."), "/stripe"), Some("b"));
        assert_eq!(at(Some("other.example.com"), "/github"), Some("c"));
        assert_eq!(at(Some("other.example.com"), "/stripe"), None);
        assert_eq!(
            at(Some("hooks.example.com"), "/github/"),
            None,
            "exact path"
        );
        assert_eq!(at(None, "/github"), None, "no host, no exact route");
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn a_hostless_endpoint_serves_hosts_nobody_claims() {
        let (table, conflicts) = table(&[
            ("any", None, "/hook"),
            ("mine", Some("mine.example.com"), "/hook"),
        ]);
        assert!(conflicts.is_empty());
        let at = |host, path| table.lookup(host, path).map(String::as_str);
        assert_eq!(at(Some("mine.example.com"), "/hook"), Some("mine"));
        assert_eq!(at(Some("else.example.com"), "/hook"), Some("any"));
        assert_eq!(at(None, "/hook"), Some("any"));
        assert_eq!(at(Some("[::1]:8080"), "/hook"), Some("any"));
        assert_eq!(at(Some("mine.example.com"), "/other"), None);
    }

    #[test]
    fn the_first_name_holds_a_contested_route() {
        let (table, conflicts) = table(&[
            ("b", Some("h.example.com"), "/x"),
            ("a", Some("H.example.com"), "/x"),
            ("d", None, "/y"),
            ("c", None, "/y"),
        ]);
        let at = |host, path| table.lookup(host, path).map(String::as_str);
        assert_eq!(at(Some("h.example.com"), "/x"), Some("a"));
        assert_eq!(at(Some("any"), "/y"), Some("c"));
        assert_eq!(
            conflicts,
            [
                Conflict {
                    endpoint: "b".to_owned(),
                    held_by: "a".to_owned()
                },
                Conflict {
                    endpoint: "d".to_owned(),
                    held_by: "c".to_owned()
                },
            ]
        );
    }

    #[test]
    fn hosts_are_normalized() {
        for (raw, host) in [
            ("Hooks.Example.COM", "hooks.example.com"),
            ("hooks.example.com:8443", "hooks.example.com"),
            ("hooks.example.com.", "hooks.example.com"),
            ("[2001:DB8::1]:443", "[2001:db8::1]"),
            ("[2001:db8::1]", "[2001:db8::1]"),
        ] {
            assert_eq!(normalize_host(raw), host, "{raw}");
        }
    }
}

//! The part of the shared receiver pool the operator writes: the layout of
//! the pool's one Secret ([`layout`]) and the routes of its endpoints
//! ([`routes`]). The pool itself is the receiver's `pool` module.

pub mod layout;
pub mod routes;

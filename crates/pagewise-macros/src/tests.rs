//! Unit tests of the expansion: snapshots of every attribute form and every rejection.

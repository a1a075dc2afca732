//! Helpers shared by Ember's end-to-end tests.

//! The byte stream of one transfer: the command lines on each side.

//! Black-box tests of the occopus binary.

// Package loadtest holds crier's end-to-end load tests and benchmarks:
// broadcasts through the real channel packages to the in-process protocol
// peers, with every delivery recorded in a real SQLite file. It has no
// non-test code.
package loadtest

// Package crier holds what the binary embeds from the repository root:
// the example configuration, which is also the embedded default that
// `crier demo` runs on.
package crier

import _ "embed"

// ExampleConfig is config.example.yaml as shipped.
//
//go:embed config.example.yaml
var ExampleConfig []byte

// Package channeltest holds in-process protocol peers for crier's channels:
// real servers on 127.0.0.1 that speak each provider's wire protocol, record
// exactly what arrived, and can be scripted to fail. Channel tests assert
// what a peer received rather than what the code meant to send, and
// benchmarks drive thousands of messages through the same peers.
//
// The package must not import any channel implementation (channels/twilio
// and friends import it from their tests), so peers expose plain fields
// such as URL and credentials instead of channel Config values.
package channeltest

package server

// MetricsPath is where Prometheus scrapes crier.
const MetricsPath = "/metrics"

// registerMetrics serves Options.Metrics at GET /metrics without sign-in,
// as Prometheus expects by default. What it exposes is operational (counts
// per channel instance, reason, briefing and webhook route), never an
// address, a message or a token; keep it off the public internet with the
// listen address or the proxy in front.
func (s *Server) registerMetrics() {
	if s.o.Metrics == nil {
		return
	}
	s.route("GET", MetricsPath, "", s.o.Metrics.ServeHTTP)
}

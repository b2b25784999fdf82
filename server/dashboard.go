package server

import "net/http"

// Page is one route of the web dashboard (package dashboard lists them):
// the server registers it like its own, behind sign-in with Role, so the
// role matrix and Routes cover the dashboard too.
type Page struct {
	Method, Pattern, Role string
	Handler               http.HandlerFunc
}

func (s *Server) registerDashboard() {
	for _, p := range s.o.Dashboard {
		s.route(p.Method, p.Pattern, p.Role, p.Handler)
	}
}

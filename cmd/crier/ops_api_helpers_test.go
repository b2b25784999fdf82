package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/crier-dev/crier/server"
)

// The API tests drive a real `crier serve` (the example config, a SQLite
// file, sandbox channels) and check every request they send and every
// answer they get against the embedded OpenAPI document with kin-openapi.

const (
	apiViewer   = "api-viewer-token-0123456789abcdef"
	apiOperator = "api-operator-token-0123456789abcd"
	apiAdmin    = "api-admin-token-0123456789abcdefg"
)

// apiHarness is the example config with a viewer, an operator and an
// admin token from the environment.
func apiHarness(t testing.TB) *harness {
	t.Helper()
	yaml := exampleYAML(t)
	const from = "  tokens: []\n"
	if !strings.Contains(yaml, from) {
		t.Fatalf("the example config no longer has %q under server:", from)
	}
	yaml = strings.Replace(yaml, from, `  tokens:
    - {name: wall, role: viewer, token: "${API_VIEWER}"}
    - {name: desk, role: operator, token: "${API_OPERATOR}"}
    - {name: root, role: admin, token: "${API_ADMIN}"}
    - {name: test-desk, role: operator, token: "${CRIER_TEST_TOKEN}"}
`, 1)
	h := newHarness(t, yaml)
	h.setenv("API_VIEWER", apiViewer)
	h.setenv("API_OPERATOR", apiOperator)
	h.setenv("API_ADMIN", apiAdmin)
	h.setenv("CRIER_TEST_TOKEN", serveToken) // serverRun.waitSent's token
	return h
}

// apiSpec is the parsed OpenAPI document and a router over it.
type apiSpec struct {
	doc    *openapi3.T
	router routers.Router
}

func loadSpec(t testing.TB) *apiSpec {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(server.OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &apiSpec{doc: doc, router: r}
}

// apiClient talks to one running server.
type apiClient struct {
	t    testing.TB
	s    *serverRun
	spec *apiSpec
}

// apiResp is one answer.
type apiResp struct {
	code int
	hdr  http.Header
	body []byte
}

// json decodes the answer into v or fails the test.
func (r apiResp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer is not the expected JSON: %v\n%s", err, r.body)
	}
}

// apiErrorBody is the body every API error has.
type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
		Rows    []struct {
			Line   int    `json:"line"`
			Column string `json:"column"`
		} `json:"rows"`
	} `json:"error"`
}

// req describes one call.
type req struct {
	method, path, token string
	ctype, body         string
	hdr                 map[string]string
	// badRequest skips request validation: the test sends what the
	// document forbids on purpose, and checks the answer.
	badRequest bool
}

// do sends r, validates request and answer against the document (the
// answer's status must be documented for the operation) and returns it.
func (c *apiClient) do(t *testing.T, r req) apiResp {
	t.Helper()
	build := func() *http.Request {
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
		}
		hr, err := http.NewRequest(r.method, c.s.base+r.path, body)
		if err != nil {
			t.Fatal(err)
		}
		ct := r.ctype
		if ct == "" && r.body != "" {
			ct = "application/json"
		}
		if ct != "" {
			hr.Header.Set("Content-Type", ct)
		}
		if r.token != "" {
			hr.Header.Set("Authorization", "Bearer "+r.token)
		}
		for k, v := range r.hdr {
			hr.Header.Set(k, v)
		}
		return hr
	}
	ctx := context.Background()
	probe := build()
	route, params, err := c.spec.router.FindRoute(probe)
	if err != nil {
		t.Fatalf("%s %s is not in openapi.json: %v", r.method, r.path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}}
	if !r.badRequest {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Fatalf("%s %s: the test's own request does not match openapi.json: %v", r.method, r.path, err)
		}
	}
	hc := &http.Client{Timeout: 20 * time.Second}
	resp, err := hc.Do(build())
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", r.method, r.path, err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: in.Options}
	out.SetBodyBytes(b)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s %s: answer %d does not match openapi.json: %v\n%s", r.method, r.path, resp.StatusCode, err, clip(b))
	}
	for _, tok := range []string{apiViewer, apiOperator, apiAdmin, serveToken} {
		if bytes.Contains(b, []byte(tok)) {
			t.Errorf("%s %s: the answer contains a token", r.method, r.path)
		}
	}
	return apiResp{code: resp.StatusCode, hdr: resp.Header, body: b}
}

// want calls do and fails unless the status is code.
func (c *apiClient) want(t *testing.T, code int, r req) apiResp {
	t.Helper()
	resp := c.do(t, r)
	if resp.code != code {
		t.Fatalf("%s %s: %d, want %d\n%s", r.method, r.path, resp.code, code, clip(resp.body))
	}
	return resp
}

func clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// startAPI runs crier serve on an API harness and returns a client.
func startAPI(t testing.TB) (*harness, *apiClient) {
	t.Helper()
	h := apiHarness(t)
	s := startServe(t, h)
	return h, &apiClient{t: t, s: s, spec: loadSpec(t)}
}

// waitDone polls a trigger's progress until nothing is queued or sending.
func (c *apiClient) waitDone(t *testing.T, key string) progressBody {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var p progressBody
	for time.Now().Before(deadline) {
		c.want(t, http.StatusOK, req{method: "GET", path: "/api/v1/broadcasts/" + key, token: apiViewer}).json(t, &p)
		if p.Done {
			return p
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not an assertion
	}
	t.Fatalf("trigger %s not done within 20s: %+v\nserver stderr:\n%s", key, p, c.s.stderr.String())
	return p
}

type progressBody struct {
	Trigger string         `json:"trigger"`
	Kind    string         `json:"kind"`
	Total   int            `json:"total"`
	Counts  map[string]int `json:"counts"`
	Done    bool           `json:"done"`
}

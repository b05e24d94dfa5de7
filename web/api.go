package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"

	"github.com/tbflow/tbflow/engine"
)

// Error codes (docs/editor-api.md).
const (
	codeBadRequest     = "bad_request"
	codeUnknownCommand = "unknown_command"
	codeTooLarge       = "too_large"
	codeConflict       = "conflict"
	codeInvalid        = "invalid"
	codeNotFound       = "not_found"
	codeUnauthorized   = "unauthorized"
	codeForbidden      = "forbidden"
	codeMisdirected    = "misdirected"
	codeTooMany        = "too_many_requests"
	codeInternal       = "internal"
)

// apiError is the error body of a REST answer and of a WebSocket reply.
type apiError struct {
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Problems engine.Problems `json:"problems,omitempty"`
	status   int
}

func badRequest(msg string) *apiError {
	return &apiError{Code: codeBadRequest, Message: msg, status: http.StatusBadRequest}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]any{"error": &apiError{Code: codeInternal, Message: "encoding the answer: " + err.Error()}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *apiError) {
	status := e.status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"error": e})
}

// flowsResult is the answer to "flows" and GET /api/flows.
type flowsResult struct {
	Flows *engine.Flow `json:"flows"`
	Rev   string       `json:"rev"`
}

func (s *Server) flows() flowsResult {
	f, rev := s.eng.Flows()
	return flowsResult{Flows: f, Rev: rev}
}

func (s *Server) types() map[string]any {
	ts := s.eng.Types()
	if ts == nil {
		ts = []*engine.Type{}
	}
	return map[string]any{"types": ts}
}

func (s *Server) statuses() map[string]any {
	st := s.eng.Statuses()
	if st == nil {
		st = map[string]engine.Status{}
	}
	return map[string]any{"statuses": st}
}

// counters returns the counters of every deployed node that has them.
func (s *Server) counters() map[string]any {
	f, _ := s.eng.Flows()
	out := map[string]engine.NodeCounters{}
	for _, n := range f.Nodes {
		if c, ok := s.eng.Counters(n.ID); ok {
			out[n.ID] = c
		}
	}
	return map[string]any{"counters": out}
}

// parseFlow parses a flow sent by a client. A document that is not a flow
// is an invalid flow whose problems carry the line and column.
func parseFlow(ctx context.Context, raw []byte) (*engine.Flow, *apiError) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, badRequest(`"flows" is required: a JSON array of nodes`)
	}
	f, err := engine.ParseFlowContext(ctx, raw)
	if ctx.Err() != nil {
		return nil, gone(ctx)
	}
	if err != nil {
		return nil, invalidError(err)
	}
	return f, nil
}

// gone is the answer to a request whose client went away (nobody reads
// it) or a server shutting down.
func gone(ctx context.Context) *apiError {
	return &apiError{Code: codeInternal, Message: "request abandoned: " + ctx.Err().Error(), status: http.StatusServiceUnavailable}
}

func invalidError(err error) *apiError {
	return &apiError{Code: codeInvalid, Message: err.Error(), Problems: engine.ProblemsFromError(err), status: http.StatusBadRequest}
}

func parseMode(m string) (engine.DeployMode, *apiError) {
	switch engine.DeployMode(m) {
	case "", engine.DeployModified:
		return engine.DeployModified, nil
	case engine.DeployFull:
		return engine.DeployFull, nil
	}
	return "", badRequest(`deploy mode "` + m + `": want "nodes" or "full"`)
}

// deploy parses and deploys a flow. Parsing stops when parseCtx ends (the
// client went away); ctx bounds stopping replaced nodes.
func (s *Server) deploy(parseCtx, ctx context.Context, raw []byte, rev, mode string) (string, *apiError) {
	m, aerr := parseMode(mode)
	if aerr != nil {
		return "", aerr
	}
	f, aerr := parseFlow(parseCtx, raw)
	if aerr != nil {
		return "", aerr
	}
	newRev, err := s.eng.Deploy(ctx, f, rev, m)
	if err != nil {
		var ve *engine.ValidationError
		switch {
		case errors.Is(err, engine.ErrConflict):
			return "", &apiError{Code: codeConflict, Message: err.Error(), status: http.StatusConflict}
		case errors.As(err, &ve):
			return "", invalidError(err)
		case errors.Is(err, engine.ErrStopped):
			return "", &apiError{Code: codeInternal, Message: err.Error(), status: http.StatusServiceUnavailable}
		}
		s.log.Error("deploying flow", "err", err)
		return "", &apiError{Code: codeInternal, Message: err.Error(), status: http.StatusInternalServerError}
	}
	return newRev, nil
}

// validate returns every problem of a flow; a document that is not a flow
// gives its syntax problem.
func (s *Server) validate(ctx context.Context, raw []byte) (engine.Problems, *apiError) {
	f, aerr := parseFlow(ctx, raw)
	if aerr != nil {
		if aerr.Code == codeInvalid {
			return aerr.Problems, nil
		}
		return nil, aerr
	}
	var ps engine.Problems
	if v, ok := s.eng.(interface {
		ValidateContext(context.Context, *engine.Flow) engine.Problems
	}); ok {
		ps = v.ValidateContext(ctx, f)
	} else {
		ps = s.eng.Validate(f)
	}
	if ctx.Err() != nil {
		return nil, gone(ctx)
	}
	if ps == nil {
		ps = engine.Problems{}
	}
	return ps, nil
}

func (s *Server) inject(ctx context.Context, id string) *apiError {
	if id == "" {
		return badRequest(`inject needs a node "id"`)
	}
	if err := s.eng.Inject(ctx, id); err != nil {
		if errors.Is(err, engine.ErrUnknownNode) {
			return &apiError{Code: codeNotFound, Message: err.Error(), status: http.StatusNotFound}
		}
		return badRequest(err.Error())
	}
	return nil
}

// readFlows reads a request body of at most MaxFrame bytes and returns
// its flow and rev (see splitBody).
func (s *Server) readFlows(w http.ResponseWriter, r *http.Request) (flows []byte, rev string, aerr *apiError) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxFrame))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, "", &apiError{Code: codeTooLarge, Message: "request body over the limit", status: http.StatusRequestEntityTooLarge}
		}
		return nil, "", badRequest("reading the request body: " + err.Error())
	}
	return splitBody(b)
}

func (s *Server) handleGetFlows(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.flows())
}

// splitBody returns the flow and the rev of a POST body: {"flows", "rev"}
// or a bare array (no revision check).
func splitBody(body []byte) (flows []byte, rev string, aerr *apiError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return body, "", nil
	}
	var wrap struct {
		Flows json.RawMessage `json:"flows"`
		Rev   json.RawMessage `json:"rev"`
	}
	if err := json.Unmarshal(trimmed, &wrap); err != nil {
		// Let the flow parser report where the syntax breaks.
		return body, "", nil
	}
	if len(wrap.Rev) > 0 && string(wrap.Rev) != "null" {
		if err := json.Unmarshal(wrap.Rev, &rev); err != nil {
			return nil, "", badRequest(`"rev" must be a string`)
		}
	}
	if wrap.Flows == nil {
		return nil, "", badRequest(`"flows" is required: a JSON array of nodes`)
	}
	return wrap.Flows, rev, nil
}

func (s *Server) handlePostFlows(w http.ResponseWriter, r *http.Request) {
	flows, rev, aerr := s.readFlows(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	mode := r.URL.Query().Get("mode")
	if mode == "" {
		mode = r.Header.Get("Node-RED-Deployment-Type")
	}
	// A client that goes away does not cut the deploy short.
	newRev, aerr := s.deploy(r.Context(), context.WithoutCancel(r.Context()), flows, rev, mode)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"rev": newRev})
}

func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	flows, _, aerr := s.readFlows(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ps, aerr := s.validate(r.Context(), flows)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"problems": ps})
}

func (s *Server) handleNodes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.types())
}

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.statuses())
}

func (s *Server) handleCounters(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.counters())
}

func (s *Server) handleInject(w http.ResponseWriter, r *http.Request) {
	if aerr := s.inject(context.WithoutCancel(r.Context()), r.PathValue("id")); aerr != nil {
		writeError(w, aerr)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sortedIDs returns the keys of m in order.
func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

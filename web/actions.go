package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// actionTimeout bounds one node action (a browse of a slow server).
const actionTimeout = 30 * time.Second

// actionRunner is implemented by engines that run node actions
// (engine.Engine does).
type actionRunner interface {
	RunAction(ctx context.Context, f *engine.Flow, nodeID, name string, args json.RawMessage) (any, error)
}

// handleListActions answers GET /api/nodes/{type}/actions: the actions of
// a node type, [{"name","field","label","help"}].
func (s *Server) handleListActions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, engine.Actions(r.PathValue("type")))
}

// handleNodeAction answers POST /api/nodes/{type}/actions/{name}. The body
// is {"flows": [...], "node": "id", "args": {...}}: the flow as the editor
// holds it (at least the node and the config nodes it uses; secrets left
// out or as the placeholder take their deployed values), the id of the
// node being edited, which must be of {type}, and the action's arguments.
// The answer is {"result": ...}. Origin and authentication are checked by
// ServeHTTP like every state-changing request.
func (s *Server) handleNodeAction(w http.ResponseWriter, r *http.Request) {
	ar, ok := s.eng.(actionRunner)
	if !ok {
		writeError(w, &apiError{Code: codeNotFound, Message: "this server runs no node actions", status: http.StatusNotImplemented})
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxFrame))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, &apiError{Code: codeTooLarge, Message: "request body over the limit", status: http.StatusRequestEntityTooLarge})
			return
		}
		writeError(w, badRequest("reading the request body: "+err.Error()))
		return
	}
	var body struct {
		Flows json.RawMessage `json:"flows"`
		Node  string          `json:"node"`
		Args  json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		writeError(w, badRequest("the body must be {\"flows\": [...], \"node\": \"id\", \"args\": {...}}: "+err.Error()))
		return
	}
	if body.Node == "" || len(body.Flows) == 0 {
		writeError(w, badRequest(`"flows" and "node" are required`))
		return
	}
	f, aerr := parseFlow(r.Context(), body.Flows)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if n := f.Node(body.Node); n == nil || n.Type != r.PathValue("type") {
		writeError(w, &apiError{Code: codeNotFound, Message: "the flow has no " + r.PathValue("type") + " node " + body.Node, status: http.StatusNotFound})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	res, err := ar.RunAction(ctx, f, body.Node, r.PathValue("name"), body.Args)
	if err != nil {
		var ve *engine.ValidationError
		var fe *engine.FieldError
		switch {
		case errors.Is(err, engine.ErrUnknownAction), errors.Is(err, engine.ErrUnknownNode):
			writeError(w, &apiError{Code: codeNotFound, Message: err.Error(), status: http.StatusNotFound})
		case errors.As(err, &ve):
			writeError(w, invalidError(err))
		case errors.As(err, &fe):
			writeError(w, badRequest(err.Error()))
		default:
			// The node's peer failed (not reachable, refused): the
			// message says why.
			writeError(w, &apiError{Code: codeInternal, Message: err.Error(), status: http.StatusBadGateway})
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": res})
}

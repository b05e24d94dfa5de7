package web

import (
	"errors"
	"net/http"

	"github.com/tbflow/tbflow/engine"
)

// switcher is implemented by engines that switch running nodes on and off
// without a deploy (engine.Engine does).
type switcher interface {
	SetActive(id string, on bool) (engine.SwitchData, error)
}

// setActive switches debug node id on or off at once; the answer is
// {"id", "active", "rev", "prev"}.
func (s *Server) setActive(id string, on bool) (map[string]any, *apiError) {
	if id == "" {
		return nil, badRequest(`a debug node "id" is required`)
	}
	sw, ok := s.eng.(switcher)
	if !ok {
		return nil, &apiError{Code: codeNotFound, Message: "this server cannot switch nodes without a deploy", status: http.StatusNotImplemented}
	}
	d, err := sw.SetActive(id, on)
	if err != nil {
		switch {
		case errors.Is(err, engine.ErrUnknownNode):
			return nil, &apiError{Code: codeNotFound, Message: err.Error() + " (deploy the node first)", status: http.StatusNotFound}
		case errors.Is(err, engine.ErrNotSwitchable):
			return nil, badRequest(err.Error())
		case errors.Is(err, engine.ErrStopped):
			return nil, &apiError{Code: codeInternal, Message: err.Error(), status: http.StatusServiceUnavailable}
		}
		s.log.Error("switching a node", "node_id", id, "err", err)
		return nil, &apiError{Code: codeInternal, Message: err.Error(), status: http.StatusInternalServerError}
	}
	return map[string]any{"id": id, "active": d.Active, "rev": d.Rev, "prev": d.Prev}, nil
}

// handleDebugSwitch answers POST /api/debug/{id}/{state}, state "enable"
// or "disable" (Node-RED's POST /debug/:id/enable|disable). Origin and
// authentication are checked by ServeHTTP like every state-changing
// request.
func (s *Server) handleDebugSwitch(w http.ResponseWriter, r *http.Request) {
	var on bool
	switch r.PathValue("state") {
	case "enable":
		on = true
	case "disable":
	default:
		writeError(w, &apiError{Code: codeNotFound, Message: "no such API endpoint: want /api/debug/{id}/enable or /disable", status: http.StatusNotFound})
		return
	}
	res, aerr := s.setActive(r.PathValue("id"), on)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

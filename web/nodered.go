package web

import (
	"encoding/json"
	"net/http"

	"github.com/tbflow/tbflow/engine"
)

// Node-RED conversion for the editor's Import and Export dialogs:
//
//	POST /api/nodered/import  body: flow JSON (a Node-RED export or not)
//	  → {"nodered": false} when it is a tbflow flow already, else
//	    {"nodered": true, "flows": [...converted...], "report": {...}, "text": "..."}
//	POST /api/nodered/export  body: tbflow flow JSON
//	  → {"flows": [...for Node-RED...], "report": {"exported", "missing", "notes"}}
//
// Neither changes anything on the server.

func (s *Server) routeNodeRED(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/nodered/import", s.handleNodeREDImport)
	mux.HandleFunc("POST /api/nodered/export", s.handleNodeREDExport)
}

// registry is the engine's node-type registry, or the default one.
func (s *Server) registry() *engine.Registry {
	if e, ok := s.opts.Engine.(interface{ Registry() *engine.Registry }); ok {
		return e.Registry()
	}
	return engine.DefaultRegistry()
}

func (s *Server) readFlowBody(w http.ResponseWriter, r *http.Request) (*engine.Flow, bool) {
	body, _, aerr := s.readFlows(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return nil, false
	}
	f, err := engine.ParseFlow(body)
	if err != nil {
		writeError(w, &apiError{Code: codeInvalid, Message: err.Error(), Problems: engine.ProblemsFromError(err), status: http.StatusBadRequest})
		return nil, false
	}
	return f, true
}

func (s *Server) handleNodeREDImport(w http.ResponseWriter, r *http.Request) {
	f, ok := s.readFlowBody(w, r)
	if !ok {
		return
	}
	reg := s.registry()
	if !reg.LooksLikeNodeRED(f) {
		writeJSON(w, http.StatusOK, map[string]any{"nodered": false})
		return
	}
	conv, rep := reg.ImportNodeREDFlow(f)
	flows, err := conv.MarshalJSON()
	if err != nil {
		writeError(w, &apiError{Code: codeInternal, Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"nodered": true, "flows": json.RawMessage(flows), "report": rep, "text": rep.Text(),
		"problems": reg.Validate(conv, nil),
	})
}

func (s *Server) handleNodeREDExport(w http.ResponseWriter, r *http.Request) {
	f, ok := s.readFlowBody(w, r)
	if !ok {
		return
	}
	out, rep := s.registry().ExportNodeRED(f)
	flows, err := out.MarshalJSON()
	if err != nil {
		writeError(w, &apiError{Code: codeInternal, Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"flows": json.RawMessage(flows), "report": rep})
}

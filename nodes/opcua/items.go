package opcua

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gopcua/opcua/ua"

	"github.com/tbflow/tbflow/engine"
)

// itemRow is one row of an items table: a node id and the key its value
// goes by.
type itemRow struct {
	Key    string `json:"key"`
	NodeID string `json:"nodeId"`
}

// itemsField is the items table shared by opcua-in and opcua-write.
func itemsField(help string) engine.Field {
	return engine.Field{
		Name: "items", Kind: engine.KindTable, Label: "Items", Min: engine.Float(1), Help: help,
		Default: []any{map[string]any{"key": "value", "nodeId": "ns=2;s=Value"}},
		Fields: []engine.Field{
			{Name: "key", Kind: engine.KindString, Label: "Key", Required: true, Help: "Name of the value in the payload (and of the key to write).", Example: "temperature"},
			{Name: "nodeId", Kind: engine.KindString, Label: "Node id", Required: true, Example: "ns=2;s=Boiler.Temperature",
				Help: "The variable's node id: `ns=<index>;{i,s,g,b}=<id>`, or `nsu=<namespace URI>;s=<id>` (resolved after connecting). **Browse…** picks it from the server."},
		},
	}
}

// parseNodeID reads a node id; nsu= forms are resolved with the server's
// namespace array ns (nil before connecting: only checked for form).
func parseNodeID(s string, ns []string) (*ua.NodeID, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "nsu=") {
		if ns == nil {
			if !strings.Contains(s, ";") {
				return nil, fmt.Errorf("%q is not a node id: nsu=<URI>;s=<id>", s)
			}
			_, err := ua.ParseNodeID("ns=1" + s[strings.Index(s, ";"):])
			return nil, err
		}
		e, err := ua.ParseExpandedNodeID(s, ns)
		if err != nil {
			return nil, err
		}
		return e.NodeID, nil
	}
	id, err := ua.ParseNodeID(s)
	if err != nil {
		return nil, err
	}
	return id, nil
}

// checkItems checks the table cell by cell.
func checkItems(rows []itemRow) error {
	var errs []error
	seen := map[string]int{}
	for i, r := range rows {
		if r.Key == "" {
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("items[%d].key", i), Message: "a key is needed"})
		} else if j, dup := seen[r.Key]; dup {
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("items[%d].key", i), Message: fmt.Sprintf("the key %q is already used by row %d", r.Key, j)})
		} else {
			seen[r.Key] = i
		}
		if _, err := parseNodeID(r.NodeID, nil); err != nil || strings.TrimSpace(r.NodeID) == "" {
			msg := "a node id is needed"
			if err != nil {
				msg = fmt.Sprintf("%q is not a node id (ns=2;s=Name, ns=0;i=2258, nsu=<URI>;s=Name): %v", r.NodeID, err)
			}
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("items[%d].nodeId", i), Message: msg})
		}
	}
	return errors.Join(errs...)
}

// resolveItems parses every node id against the server's namespaces.
func resolveItems(rows []itemRow, ns []string) ([]*ua.NodeID, error) {
	ids := make([]*ua.NodeID, len(rows))
	for i, r := range rows {
		id, err := parseNodeID(r.NodeID, ns)
		if err != nil {
			return nil, fmt.Errorf("item %q: %w", r.Key, err)
		}
		ids[i] = id
	}
	return ids, nil
}

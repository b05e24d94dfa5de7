package opcua

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/tbflow/tbflow/engine"
)

// maxBrowse bounds the children one browse returns.
const maxBrowse = 2000

func init() {
	for _, typ := range []string{"opcua-in", "opcua-write"} {
		engine.RegisterAction(typ, engine.ActionSpec{
			Name: "browse", Field: "items.nodeId", Label: "Browse…",
			Help: "Lists the objects and variables under a node of the server's address space (the Objects folder first), to pick node ids from.",
			Run:  browseAction,
		})
	}
}

// browseArgs are the browse action's arguments.
type browseArgs struct {
	// NodeID is the node whose children to list; empty is the Objects
	// folder (i=85).
	NodeID string `json:"nodeId"`
}

// BrowseResult is what the browse action returns.
type BrowseResult struct {
	NodeID   string        `json:"nodeId"`
	Children []BrowseChild `json:"children"`
	// Truncated is set when the node has more children than were listed.
	Truncated bool `json:"truncated,omitempty"`
}

// BrowseChild is one child node.
type BrowseChild struct {
	NodeID      string `json:"nodeId"`
	BrowseName  string `json:"browseName"`
	DisplayName string `json:"displayName"`
	// NodeClass is "Object" or "Variable".
	NodeClass string `json:"nodeClass"`
	// DataType is a variable's built-in type ("Double"), or the node id of
	// another data type.
	DataType string `json:"dataType,omitempty"`
}

// connectionOf returns the connection of an opcua-in or opcua-write node.
func connectionOf(n engine.Node) (*Connection, error) {
	switch t := n.(type) {
	case *inNode:
		return t.conn, nil
	case *writeNode:
		return t.conn, nil
	case *Connection:
		return t, nil
	}
	return nil, fmt.Errorf("browse: not an OPC UA node (%T)", n)
}

func browseAction(ctx context.Context, req *engine.ActionRequest) (any, error) {
	var args browseArgs
	if len(req.Args) > 0 && string(req.Args) != "null" {
		if err := json.Unmarshal(req.Args, &args); err != nil {
			return nil, &engine.FieldError{Field: "nodeId", Message: "arguments must be {\"nodeId\": \"...\"}"}
		}
	}
	conn, err := connectionOf(req.Node)
	if err != nil {
		return nil, err
	}
	if err := conn.Start(ctx); err != nil {
		return nil, err
	}
	defer conn.Stop(context.WithoutCancel(ctx))
	cli, _, err := conn.Client(ctx)
	if err != nil {
		return nil, err
	}
	return browse(ctx, cli, args.NodeID)
}

// browse lists the Object and Variable children of id (hierarchical
// references, forward).
func browse(ctx context.Context, cli *opcua.Client, id string) (*BrowseResult, error) {
	if strings.TrimSpace(id) == "" {
		id = "i=85"
	}
	nid, err := parseNodeID(id, cli.Namespaces())
	if err != nil {
		return nil, &engine.FieldError{Field: "nodeId", Message: fmt.Sprintf("%q is not a node id: %v", id, err)}
	}
	res := &BrowseResult{NodeID: nid.String(), Children: []BrowseChild{}}
	resp, err := cli.Browse(ctx, &ua.BrowseRequest{
		NodesToBrowse: []*ua.BrowseDescription{{
			NodeID: nid, BrowseDirection: ua.BrowseDirectionForward,
			ReferenceTypeID: ua.NewNumericNodeID(0, 33), IncludeSubtypes: true, // HierarchicalReferences
			NodeClassMask: uint32(ua.NodeClassObject | ua.NodeClassVariable),
			ResultMask:    uint32(ua.BrowseResultMaskAll),
		}},
		RequestedMaxReferencesPerNode: 500,
	})
	if err != nil {
		return nil, fmt.Errorf("browsing %s: %w", nid, err)
	}
	if len(resp.Results) != 1 {
		return nil, fmt.Errorf("browsing %s: no result", nid)
	}
	r := resp.Results[0]
	if r.StatusCode != ua.StatusOK {
		return nil, fmt.Errorf("browsing %s: %w", nid, r.StatusCode)
	}
	refs := r.References
	cp := r.ContinuationPoint
	for len(cp) > 0 && len(refs) < maxBrowse {
		next, err := cli.BrowseNext(ctx, &ua.BrowseNextRequest{ContinuationPoints: [][]byte{cp}})
		if err != nil || len(next.Results) != 1 || next.Results[0].StatusCode != ua.StatusOK {
			break
		}
		refs = append(refs, next.Results[0].References...)
		cp = next.Results[0].ContinuationPoint
	}
	if len(cp) > 0 {
		res.Truncated = true
		_, _ = cli.BrowseNext(ctx, &ua.BrowseNextRequest{ReleaseContinuationPoints: true, ContinuationPoints: [][]byte{cp}})
	}
	if len(refs) > maxBrowse {
		refs, res.Truncated = refs[:maxBrowse], true
	}
	var vars []int
	read := &ua.ReadRequest{}
	for _, ref := range refs {
		if ref == nil || ref.NodeID == nil {
			continue
		}
		c := BrowseChild{NodeID: ref.NodeID.NodeID.String(), NodeClass: ref.NodeClass.String()}
		c.NodeClass = strings.TrimPrefix(c.NodeClass, "NodeClass")
		if ref.BrowseName != nil {
			c.BrowseName = ref.BrowseName.Name
		}
		if ref.DisplayName != nil {
			c.DisplayName = ref.DisplayName.Text
		}
		if ref.NodeClass == ua.NodeClassVariable {
			vars = append(vars, len(res.Children))
			read.NodesToRead = append(read.NodesToRead, &ua.ReadValueID{NodeID: ref.NodeID.NodeID, AttributeID: ua.AttributeIDDataType})
		}
		res.Children = append(res.Children, c)
	}
	if len(vars) > 0 {
		if dt, err := cli.Read(ctx, read); err == nil && len(dt.Results) == len(vars) {
			for j, i := range vars {
				if id, ok := dt.Results[j].Value.Value().(*ua.NodeID); ok && dt.Results[j].Status == ua.StatusOK {
					res.Children[i].DataType = dataTypeName(id)
				}
			}
		}
	}
	return res, nil
}

func dataTypeName(id *ua.NodeID) string {
	if id.Namespace() == 0 && id.IntID() >= 1 && id.IntID() <= 25 {
		name := ua.TypeID(id.IntID()).String()
		name = strings.TrimPrefix(name, "TypeID")
		if strings.HasPrefix(name, "Uint") {
			name = "UInt" + name[4:]
		}
		return name
	}
	return id.String()
}

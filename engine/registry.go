package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Registry holds node-type declarations. The engine receives a *Registry,
// so tests and embedders can build an isolated one ([NewRegistry]) or extend
// a copy of the default one ([Registry.Clone]). Node packages register into
// the default registry from their init functions ([Register]).
type Registry struct {
	mu      sync.RWMutex
	types   map[string]*Type
	imports map[string]ImportFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{types: map[string]*Type{}, imports: map[string]ImportFunc{}}
}

var defaultRegistry = NewRegistry()

// DefaultRegistry returns the registry node packages register into from
// their init functions.
func DefaultRegistry() *Registry { return defaultRegistry }

// Register adds t to the default registry; it panics on a mistake in the
// declaration (see [Registry.Register]).
func Register(t Type) { defaultRegistry.Register(t) }

// RegisterImport adds a Node-RED import rule to the default registry; see
// [Registry.RegisterImport].
func RegisterImport(nodeREDType string, fn ImportFunc) {
	defaultRegistry.RegisterImport(nodeREDType, fn)
}

// Clone returns an independent copy of the registry.
func (r *Registry) Clone() *Registry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := NewRegistry()
	for k, v := range r.types {
		c.types[k] = v
	}
	for k, v := range r.imports {
		c.imports[k] = v
	}
	return c
}

var typeNameRE = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// Register adds a node type. It panics when the declaration is wrong: an
// empty, non-kebab-case, reserved or duplicate name, a nil constructor, a bad
// field spec (unknown kind, enum default outside the enum, config-ref
// without a Ref, duplicate or reserved field names), or config struct json
// tags that disagree with the field specs. Such mistakes are programming
// errors and should stop the program at startup.
func (r *Registry) Register(t Type) {
	if err := checkType(&t); err != nil {
		panic(fmt.Sprintf("engine: registering node type %q: %v", t.Name, err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.types[t.Name]; dup {
		panic(fmt.Sprintf("engine: node type %q registered twice", t.Name))
	}
	tt := t
	r.types[t.Name] = &tt
}

// RegisterImport declares how a Node-RED node type maps onto a tbflow type
// during [Registry.ImportNodeRED]. It panics on an empty name, a nil
// function or a duplicate.
func (r *Registry) RegisterImport(nodeREDType string, fn ImportFunc) {
	if nodeREDType == "" || fn == nil {
		panic("engine: RegisterImport needs a Node-RED type name and a function")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.imports[nodeREDType]; dup {
		panic(fmt.Sprintf("engine: Node-RED import for %q registered twice", nodeREDType))
	}
	r.imports[nodeREDType] = fn
}

// Lookup returns the type called name.
func (r *Registry) Lookup(name string) (*Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[name]
	return t, ok
}

// Types returns every registered type, sorted by category then name.
func (r *Registry) Types() []*Type {
	r.mu.RLock()
	out := make([]*Type, 0, len(r.types))
	for _, t := range r.types {
		out = append(out, t)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Category != out[j].Category {
			return out[i].Category < out[j].Category
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// MarshalJSON writes the registry as a JSON array of types (see
// [Type.MarshalJSON]).
func (r *Registry) MarshalJSON() ([]byte, error) {
	return json.Marshal(r.Types())
}

func (r *Registry) importFunc(name string) (ImportFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.imports[name]
	return f, ok
}

// standardKeys are the node object keys every node may carry; they are not
// part of any type's spec.
var standardKeys = map[string]bool{
	"id": true, "type": true, "z": true, "g": true, "name": true, "x": true, "y": true,
	"w": true, "h": true, "wires": true, "d": true, "info": true, "outputs": true, "inputs": true,
	"label": true, "disabled": true, "env": true,
}

// reservedTypes are document object types the engine handles itself.
var reservedTypes = map[string]bool{"tab": true, "group": true, "comment": true, "subflow": true, "junction": true}

func checkType(t *Type) error {
	var errs []error
	switch {
	case t.Name == "":
		return errors.New("empty name")
	case !typeNameRE.MatchString(t.Name):
		return errors.New("name must be kebab-case (lowercase letters, digits and dashes)")
	case reservedTypes[t.Name]:
		return errors.New("name is reserved")
	case t.New == nil:
		return errors.New("nil constructor")
	}
	if t.Inputs < 0 || t.Inputs > 1 {
		errs = append(errs, errors.New("inputs must be 0 or 1"))
	}
	if t.Outputs < 0 {
		errs = append(errs, errors.New("negative outputs"))
	}
	if t.ConfigNode && (t.Inputs != 0 || t.Outputs != 0 || t.OutputsField != "") {
		errs = append(errs, errors.New("config nodes have no inputs or outputs"))
	}
	if t.Category == "" {
		if t.ConfigNode {
			t.Category = CategoryConfig
		} else {
			errs = append(errs, errors.New("empty category"))
		}
	}
	if strings.TrimSpace(t.Help) == "" {
		errs = append(errs, errors.New("empty help text"))
	}
	errs = append(errs, checkFields(t.Fields, "", true)...)
	if t.OutputsField != "" {
		f, ok := t.Field(t.OutputsField)
		if !ok || (f.Kind != KindTable && f.Kind != KindInt) {
			errs = append(errs, fmt.Errorf("outputsField %q is not a table or int field", t.OutputsField))
		}
	}
	if len(t.OutputLabels) > 0 && t.OutputsField == "" && len(t.OutputLabels) != t.Outputs {
		errs = append(errs, fmt.Errorf("%d output labels for %d outputs", len(t.OutputLabels), t.Outputs))
	}
	if err := CheckConfigStruct(t); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkFields(fields []Field, prefix string, top bool) []error {
	errs := checkShowIf(fields, prefix)
	seen := map[string]bool{}
	for _, f := range fields {
		name := prefix + f.Name
		if f.Name == "" {
			errs = append(errs, fmt.Errorf("field with empty name in %q", prefix))
			continue
		}
		if seen[f.Name] {
			errs = append(errs, fmt.Errorf("field %q declared twice", name))
		}
		seen[f.Name] = true
		// "outputs" may be declared: the output count of a type whose
		// OutputsField it is (Node-RED's function node keeps it there).
		if top && standardKeys[f.Name] && f.Name != "outputs" {
			errs = append(errs, fmt.Errorf("field %q is a reserved node key", name))
		}
		if !kinds[f.Kind] {
			errs = append(errs, fmt.Errorf("field %q has unknown kind %q", name, f.Kind))
			continue
		}
		if f.Kind == KindEnum && len(f.Enum) == 0 {
			errs = append(errs, fmt.Errorf("enum field %q has no values", name))
		}
		if f.Kind == KindConfigRef && f.Ref == "" {
			errs = append(errs, fmt.Errorf("config-ref field %q names no config type", name))
		}
		if f.Kind == KindTable {
			if len(f.Fields) == 0 {
				errs = append(errs, fmt.Errorf("table field %q has no columns", name))
			}
			errs = append(errs, checkFields(f.Fields, name+".", false)...)
		}
		if f.Default != nil {
			if ps := checkValue(f, f.Default, nil); len(ps) > 0 {
				errs = append(errs, fmt.Errorf("field %q: default: %s", name, ps[0].Message))
			}
		}
	}
	return errs
}

// CheckConfigStruct reports disagreements between t's field specs and the
// json tags and Go types of its config struct: every spec field needs a
// struct field and vice versa, and the Go type must suit the kind.
func CheckConfigStruct(t *Type) error {
	if t.New == nil {
		return errors.New("nil constructor")
	}
	ct := t.New.ConfigType()
	if ct.Kind() != reflect.Struct {
		return fmt.Errorf("config type %v is not a struct", ct)
	}
	return errors.Join(checkStruct(ct, t.Fields, "")...)
}

func jsonFields(st reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range st.NumField() {
		sf := st.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out[name] = sf
	}
	return out
}

var (
	durationType = reflect.TypeFor[Duration]()
	rawType      = reflect.TypeFor[json.RawMessage]()
)

func checkStruct(st reflect.Type, fields []Field, prefix string) []error {
	var errs []error
	sfs := jsonFields(st)
	for _, f := range fields {
		sf, ok := sfs[f.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("field %q has no struct field with json tag %q in %v", prefix+f.Name, f.Name, st))
			continue
		}
		delete(sfs, f.Name)
		gt := sf.Type
		okType := true
		switch f.Kind {
		case KindString, KindEnum, KindExpr, KindConfigRef, KindSecret:
			okType = gt.Kind() == reflect.String
		case KindNumber:
			okType = gt.Kind() == reflect.Float64 || gt.Kind() == reflect.Float32
		case KindInt:
			switch gt.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
				reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			default:
				okType = false
			}
		case KindBool:
			okType = gt.Kind() == reflect.Bool
		case KindDuration:
			okType = gt == durationType
		case KindJSON:
			okType = gt.Kind() == reflect.Interface || gt == rawType || gt.Kind() == reflect.Map || gt.Kind() == reflect.Slice
		case KindTable:
			if gt.Kind() != reflect.Slice || gt.Elem().Kind() != reflect.Struct {
				okType = false
			} else {
				errs = append(errs, checkStruct(gt.Elem(), f.Fields, prefix+f.Name+".")...)
			}
		}
		if !okType {
			errs = append(errs, fmt.Errorf("field %q of kind %s cannot decode into %v", prefix+f.Name, f.Kind, gt))
		}
	}
	for name := range sfs {
		errs = append(errs, fmt.Errorf("struct field with json tag %q in %v has no field spec", prefix+name, st))
	}
	return errs
}

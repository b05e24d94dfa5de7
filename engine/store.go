package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SecretPlaceholder stands for a secret's value in flows sent to the
// browser ([Redact]). Deploying a flow that still holds the placeholder
// keeps the value already deployed.
const SecretPlaceholder = "__SECRET__"

// Credentials maps node id → secret field → value.
type Credentials map[string]map[string]string

// SplitSecrets returns a copy of f without literal secret values and the
// secrets it removed. ${NAME} references stay in the flow: they are not
// secret themselves. Only fields of registered types marked secret are
// touched.
func SplitSecrets(f *Flow, reg *Registry) (*Flow, Credentials) {
	out := f.Clone()
	creds := Credentials{}
	forSecrets(out, reg, func(n *NodeDef, field string, val string) {
		if creds[n.ID] == nil {
			creds[n.ID] = map[string]string{}
		}
		creds[n.ID][field] = val
		delete(n.Fields, field)
	})
	return out, creds
}

// Redact returns a copy of f for the browser: literal secret values are
// replaced by [SecretPlaceholder] (the editor shows "has value").
func Redact(f *Flow, reg *Registry) *Flow {
	out := f.Clone()
	forSecrets(out, reg, func(n *NodeDef, field string, _ string) {
		n.Fields[field] = SecretPlaceholder
	})
	return out
}

// Export returns a copy of f to hand to other people: literal secret values
// are removed.
func Export(f *Flow, reg *Registry) *Flow {
	out, _ := SplitSecrets(f, reg)
	return out
}

// MergeSecrets fills secret fields of f that are absent, empty or hold the
// placeholder from creds (a flow file and its credentials file).
func MergeSecrets(f *Flow, creds Credentials) {
	mergeSecrets(f, creds, true)
}

// keepSecrets fills secret fields of f that are absent or hold the
// placeholder from creds (the deployed values): a deploy that sends "" for
// a secret clears it.
func keepSecrets(f *Flow, creds Credentials) {
	mergeSecrets(f, creds, false)
}

func mergeSecrets(f *Flow, creds Credentials, fillEmpty bool) {
	for _, n := range f.Nodes {
		for field, val := range creds[n.ID] {
			cur, ok := n.Fields[field]
			if s, isStr := cur.(string); !ok || cur == nil || (isStr && ((fillEmpty && s == "") || s == SecretPlaceholder)) {
				if n.Fields == nil {
					n.Fields = map[string]any{}
				}
				n.Fields[field] = val
			}
		}
	}
}

// secretsOf returns the literal secrets held by f.
func secretsOf(f *Flow, reg *Registry) Credentials {
	creds := Credentials{}
	forSecrets(f, reg, func(n *NodeDef, field string, val string) {
		if creds[n.ID] == nil {
			creds[n.ID] = map[string]string{}
		}
		creds[n.ID][field] = val
	})
	return creds
}

func forSecrets(f *Flow, reg *Registry, fn func(n *NodeDef, field string, val string)) {
	for _, n := range f.Nodes {
		t, ok := reg.Lookup(n.Type)
		if !ok {
			continue
		}
		for _, fs := range t.Fields {
			if !fs.isSecret() {
				continue
			}
			s, ok := n.Fields[fs.Name].(string)
			if !ok || s == "" || s == SecretPlaceholder || IsEnvRef(s) {
				continue
			}
			fn(n, fs.Name, s)
		}
	}
}

// Store persists the deployed flow.
type Store interface {
	// Load returns the saved flow with its secrets merged in; a missing
	// flow is an empty flow, not an error.
	Load() (*Flow, error)
	// Save writes f atomically.
	Save(f *Flow) error
}

// FileStore keeps a flow in a JSON file and its secrets in a credentials
// file beside it ("site.json" → "site_cred.json", mode 0600), as Node-RED
// does. Both are written atomically: a temporary file in the same
// directory is written, synced and renamed over the old one.
type FileStore struct {
	// Path is the flow file.
	Path string
	// Registry tells which fields are secret.
	Registry *Registry
}

// CredentialsPath returns the credentials file beside the flow file.
func (s *FileStore) CredentialsPath() string {
	ext := filepath.Ext(s.Path)
	return strings.TrimSuffix(s.Path, ext) + "_cred" + ext
}

// Load reads the flow and merges the credentials file when there is one.
// JSON syntax errors come back as a *SyntaxError.
func (s *FileStore) Load() (*Flow, error) {
	return s.LoadContext(context.Background())
}

// LoadContext is Load that gives up once ctx ends.
func (s *FileStore) LoadContext(ctx context.Context) (*Flow, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Flow{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading flow: %w", err)
	}
	f, err := ParseFlowContext(ctx, data)
	if err != nil {
		return nil, err
	}
	cdata, err := os.ReadFile(s.CredentialsPath())
	cdata = bytes.TrimPrefix(cdata, utf8BOM)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading credentials: %w", err)
	default:
		var creds Credentials
		if err := json.Unmarshal(cdata, &creds); err != nil {
			return nil, fmt.Errorf("reading credentials %q: %w", s.CredentialsPath(), err)
		}
		MergeSecrets(f, creds)
	}
	return f, nil
}

// Save writes the flow without its literal secrets, and the secrets to the
// credentials file (mode 0600). The credentials file is removed when there
// are no secrets.
func (s *FileStore) Save(f *Flow) error {
	reg := s.Registry
	if reg == nil {
		reg = DefaultRegistry()
	}
	pub, creds := SplitSecrets(f, reg)
	data, err := pub.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding flow: %w", err)
	}
	if len(creds) > 0 {
		cdata, err := json.MarshalIndent(creds, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding credentials: %w", err)
		}
		if err := WriteFileAtomic(s.CredentialsPath(), cdata, 0o600); err != nil {
			return err
		}
	} else if err := os.Remove(s.CredentialsPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing credentials: %w", err)
	}
	return WriteFileAtomic(s.Path, append(data, '\n'), 0o644)
}

// WriteFileAtomic replaces path with data: it writes a temporary file in the
// same directory, syncs it, renames it over path and syncs the directory,
// so readers see the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	name := tmp.Name()
	cleanup := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return cleanup(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return cleanup(err)
	}
	if err := tmp.Sync(); err != nil {
		return cleanup(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

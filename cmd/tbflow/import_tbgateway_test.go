package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportTBGateway converts a small IoT Gateway config to a file (flags
// after the file), lists what did not map, and the flow validates.
func TestImportTBGateway(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "modbus.json"), filepath.Join(dir, "site.json")
	cfg := `{"master": {"slaves": [{"host": "127.0.0.1", "port": 5021, "type": "tcp", "method": "socket", "unitId": 1,
	  "deviceName": "Meter", "pollPeriod": 1000, "connectAttemptCount": 5,
	  "timeseries": [{"tag": "voltage", "type": "16uint", "functionCode": 4, "objectsCount": 1, "address": 0, "divider": 10}]}]}}`
	if err := os.WriteFile(in, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := runImport(context.Background(), []string{"tb-gateway", in, "-o", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "connectAttemptCount") {
		t.Errorf("report: %s", stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	t.Setenv("TB_GATEWAY_TOKEN", "token")
	if code := runValidate(context.Background(), []string{out}, &stdout, &stderr); code != 0 {
		t.Errorf("validate exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	if code := runImport(context.Background(), []string{"tb-gateway", filepath.Join(dir, "missing.json")}, &stdout, &stderr); code == 0 {
		t.Error("a missing file converted")
	}
}

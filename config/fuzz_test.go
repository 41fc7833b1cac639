package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/medic-sre/medic/config"
)

// FuzzLoad: whatever the bytes, parsing a config never panics, returns
// either a Config or an *Error (never both, never neither), and each
// problem names the file and a line. The seeds in testdata/fuzz/FuzzLoad
// (valid configs, every rule's invalid file, alias tricks) run with every
// plain `go test`; `go test -fuzz FuzzLoad ./config/` explores from them.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("services:\n  - name: web\n    static_targets: [127.0.0.1:80]\n    instance_probe: {port: 80}\n"))
	f.Add([]byte("a: &a [x, *a]\n"))
	f.Add([]byte("services: &s\n  - <<: *s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, "fuzz.yml", probeTypes)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v; want exactly one", cfg != nil, err)
		}
		if err == nil {
			return
		}
		var ce *config.Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a *config.Error", err, err)
		}
		if len(ce.Problems) == 0 {
			t.Fatal("an *Error with no problem")
		}
		for _, p := range ce.Problems {
			if !strings.HasPrefix(p, "fuzz.yml:") {
				t.Errorf("problem %q does not start with the file name", p)
			}
		}
	})
}

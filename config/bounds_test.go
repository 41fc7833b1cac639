package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/medic-sre/medic/config"
)

// TestBounds: the size of a file and of its tree with aliases expanded are
// checked before anything walks or decodes it.
func TestBounds(t *testing.T) {
	// aliases builds a file whose anchor a holds n scalars, used m times.
	aliases := func(n, m int) string {
		var b strings.Builder
		b.WriteString("x: &a [" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]\ny: [")
		b.WriteString(strings.TrimSuffix(strings.Repeat("*a,", m), ","))
		b.WriteString("]\n")
		return b.String()
	}
	tooMany := "1: (top level): with its aliases expanded the document has over 200000 nodes (nested aliases?); refused before decoding"
	tests := []struct {
		desc string
		src  string
		want string // the first problem, without the file name; "" for "not a bounds problem"
	}{
		{"a file over the size cap", "# " + strings.Repeat("x", config.MaxFileBytes) + "\n",
			"1: (top level): the file is 4194307 bytes, over the limit of 4194304; is this the config file?"},
		{"a file exactly at the size cap is read", "#" + strings.Repeat("x", config.MaxFileBytes-2) + "\n", ""},
		// The tree of aliases(n, m) has 6 + n + m(2 + n) nodes: document,
		// mapping, 2 keys, 2 lists, the n scalars of the anchored list, and m
		// aliases each standing for 1 + (1 + n).
		{"aliases expanding to just over the node cap (200204)", aliases(999, 199), tooMany},
		{"aliases expanding to just under the node cap (199203)", aliases(999, 198), ""},
		{"an alias used many times, each small (210007)", aliases(1, 70_000), tooMany},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.src), "f.yml", probeTypes)
			if err == nil {
				t.Fatal("parsed without error; want at least the missing services")
			}
			got := problems(t, err)[0]
			if tt.want == "" {
				if strings.Contains(got, "over the limit") || strings.Contains(got, "nodes (nested aliases?)") {
					t.Errorf("refused by a bound: %s", got)
				}
				return
			}
			if got != "f.yml:"+tt.want {
				t.Errorf("problem = %s\nwant f.yml:%s", got, tt.want)
			}
		})
	}
}

// TestLoadTooBig: Load reads no more of a file than it needs to refuse it.
func TestLoadTooBig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yml")
	if err := os.WriteFile(path, bytes.Repeat([]byte("#\n"), config.MaxFileBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path, probeTypes)
	if got := problems(t, err); len(got) != 1 || !strings.Contains(got[0], "over the limit of 4194304") {
		t.Errorf("problems = %q, want the size cap alone", got)
	}
}

// TestAliasBombCheap: the alias bomb is refused with little memory (it
// took over a gigabyte when the line-number walk came first). Memory, not
// time, so that the test does not depend on the machine's load.
func TestAliasBombCheap(t *testing.T) {
	data, err := os.ReadFile("testdata/invalid-alias-bomb.yml")
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = config.Parse(data, "bomb.yml", probeTypes)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("the alias bomb parsed")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("refusing the alias bomb allocated %d bytes, want under 1 MiB", alloc)
	}
}

// BenchmarkParseAliasBomb: how long refusing the alias bomb takes.
func BenchmarkParseAliasBomb(b *testing.B) {
	data, err := os.ReadFile("testdata/invalid-alias-bomb.yml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := config.Parse(data, "bomb.yml", probeTypes); err == nil {
			b.Fatal("the alias bomb parsed")
		}
	}
}

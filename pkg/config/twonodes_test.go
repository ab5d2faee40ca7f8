package config

import (
	"os"
	"strings"
	"testing"
)

// TestTwoNodesExample loads the env files of the README's "Running two
// nodes" as the daemon would: both name the PostgreSQL store and both nodes,
// in the same order, and differ in DLS_URL.
func TestTwoNodesExample(t *testing.T) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Running two nodes\n")
	if !ok {
		t.Fatal("README.md has no section Running two nodes")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var envs []string
	for rest := section; ; {
		_, after, found := strings.Cut(rest, "```ini\n")
		if !found {
			break
		}
		body, tail, _ := strings.Cut(after, "```")
		envs, rest = append(envs, body), tail
	}
	if len(envs) != 2 {
		t.Fatalf("%d env files in the section, want 2 (node A, node B)", len(envs))
	}
	var cs []*Config
	for _, body := range envs {
		c, err := Load(writeEnv(t, body), env(nil))
		if err != nil {
			t.Fatalf("env file %q: %v", body, err)
		}
		cs = append(cs, c)
	}
	for i, c := range cs {
		if !isPostgresURL(c.Store) {
			t.Errorf("node %d: DLS_STORE %q is no PostgreSQL URL", i, c.Store)
		}
		if len(c.Nodes) != 2 || c.Nodes[0].Host != cs[0].URL || c.Nodes[1].Host != cs[1].URL {
			t.Errorf("node %d: DLS_NODES %v, want both nodes' DLS_URL in order", i, c.Nodes)
		}
	}
	if cs[0].Store != cs[1].Store || cs[0].URL == cs[1].URL {
		t.Errorf("the nodes must share DLS_STORE and differ in DLS_URL: %+v / %+v", cs[0], cs[1])
	}
}

package config

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README settings table and etc/fastapi-dls/env from Settings")

const (
	readmePath  = "../../README.md"
	envFilePath = "../../etc/fastapi-dls/env"
	tableBegin  = "<!-- settings:begin (generated from pkg/config.Settings: go test ./pkg/config -update) -->\n"
	tableEnd    = "<!-- settings:end -->\n"
	envHeader   = `# /etc/fastapi-dls/env: settings of fastapi-dls(8), generated from the
# settings table in pkg/config (keep them in step).
#
# Every setting is shown commented out at its default; <NAME> in a default
# stands for the value of setting NAME. Uncomment and change what you need,
# then run ` + "`systemctl restart fastapi-dls`" + `. The daemon alone reads this
# file (KEY=value lines, quotes and $NAME references as in a shell), and the
# process environment overrides it; ` + "`fastapi-dls config`" + ` prints what it
# resolves. A FastAPI-DLS env file keeps working unchanged.
`
)

func renderTable() string {
	var b strings.Builder
	b.WriteString("| setting | default | meaning |\n|---|---|---|\n")
	for _, s := range Settings {
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "(unset)"
		}
		b.WriteString("| `" + s.Name + "` | " + def + " | " + strings.ReplaceAll(s.Doc, "|", `\|`) + " |\n")
	}
	return b.String()
}

func renderEnvFile() string {
	var b strings.Builder
	b.WriteString(envHeader)
	for _, s := range Settings {
		b.WriteString("\n# " + s.Doc + "\n#" + s.Name + "=" + s.Default + "\n")
	}
	return b.String()
}

// TestSettingsDocs fails when the README's settings table or the shipped env
// file drift from Settings.
func TestSettingsDocs(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := bytes.Index(readme, []byte(tableBegin)), bytes.Index(readme, []byte(tableEnd))
	if begin < 0 || end < begin {
		t.Fatalf("README.md lacks the markers %q … %q", tableBegin, tableEnd)
	}
	table := renderTable()
	if got := string(readme[begin+len(tableBegin) : end]); got != table {
		if *update {
			readme = append(append(append([]byte{}, readme[:begin+len(tableBegin)]...), table...), readme[end:]...)
			if err := os.WriteFile(readmePath, readme, 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			t.Errorf("README settings table drifted from Settings; run: go test ./pkg/config -update\n got:\n%s\nwant:\n%s", got, table)
		}
	}
	env, err := os.ReadFile(envFilePath)
	if err != nil {
		t.Fatal(err)
	}
	if want := renderEnvFile(); string(env) != want {
		if *update {
			if err := os.WriteFile(envFilePath, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			t.Errorf("etc/fastapi-dls/env drifted from Settings; run: go test ./pkg/config -update")
		}
	}
}

// TestShippedEnvFileLoads: the shipped env file, as is and with every line
// uncommented, gives the defaults (the <NAME> placeholders aside).
func TestShippedEnvFileLoads(t *testing.T) {
	c, err := Load(envFilePath, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Load(writeEnv(t, ""), env(nil))
	want.EnvFile = c.EnvFile
	if !reflect.DeepEqual(c.Public(), want.Public()) {
		t.Error("the shipped env file changes the defaults")
	}
	var uncommented strings.Builder
	for _, line := range strings.Split(renderEnvFile(), "\n") {
		if strings.HasPrefix(line, "#") && strings.Contains(line, "=") && !strings.Contains(line, "<") && !strings.Contains(line, " ") {
			uncommented.WriteString(line[1:] + "\n")
		}
	}
	c2, err := Load(writeEnv(t, uncommented.String()), env(nil))
	if err != nil {
		t.Fatalf("uncommented defaults refused: %v", err)
	}
	if !reflect.DeepEqual(c2.Public(), want.Public()) {
		t.Error("uncommenting the shipped defaults changes the config")
	}
}

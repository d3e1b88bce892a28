package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDesignMapsEveryPackage keeps the package map that opens
// docs/design.md true: one line for every directory of Go code, and none
// for a directory that is gone.
func TestDesignMapsEveryPackage(t *testing.T) {
	design, err := os.ReadFile("../../docs/design.md")
	require.NoError(t, err)
	text := string(design)
	start := strings.Index(text, "## Packages")
	require.GreaterOrEqual(t, start, 0, "docs/design.md has a ## Packages section")
	section := text[start:]
	if end := strings.Index(section[len("## Packages"):], "\n## "); end >= 0 {
		section = section[:len("## Packages")+end]
	}
	var mapped []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(section, -1) {
		mapped = append(mapped, m[1])
	}

	var packages []string
	root := "../.."
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(name, ".go") {
			return nil
		}
		dir, err := filepath.Rel(root, filepath.Dir(path))
		if err == nil && dir != "." && !slices.Contains(packages, filepath.ToSlash(dir)) {
			packages = append(packages, filepath.ToSlash(dir))
		}
		return err
	})
	require.NoError(t, err)
	require.ElementsMatch(t, packages, mapped, "docs/design.md's package map must list exactly the directories of Go code")
}

// appliedMigrationDirs hold migrations that are applied in merchants'
// databases: their text never changes, so their comments keep citing the
// contract as "SPEC §N.N" (docs/contract.md says so).
var appliedMigrationDirs = []string{"schema/migrations/", "emulator/migrations/", "provisioner/migrations/"}

// repositoryTextFiles returns the repository's text files outside the
// applied migrations and the fuzz corpora, by path relative to the root,
// except this file, which names what the tests below look for:
// the files git tracks or would track (not ignored) when the tree is a git
// checkout, else every file but the ignored directories.
func repositoryTextFiles(t *testing.T) map[string]string {
	t.Helper()
	const root = "../.."
	var paths []string
	if out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output(); err == nil {
		for p := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
			paths = append(paths, p)
		}
	} else {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if slices.Contains([]string{".git", "bin", ".data", "tmp"}, rel) {
					return filepath.SkipDir
				}
				return nil
			}
			paths = append(paths, rel)
			return nil
		})
		require.NoError(t, err)
	}
	files := map[string]string{}
	for _, p := range paths {
		if slices.ContainsFunc(appliedMigrationDirs, func(dir string) bool { return strings.HasPrefix(p, dir) }) ||
			strings.Contains("/"+p, "/testdata/fuzz/") || p == "cmd/fulfillment/docs_test.go" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree, not yet in the index
		}
		require.NoError(t, err)
		if !bytes.Contains(b, []byte{0}) {
			files[p] = string(b)
		}
	}
	_, ok := files["docs/contract.md"]
	require.True(t, ok, "docs/contract.md is missing")
	return files
}

// TestNoReferenceOutsideTheRepository keeps the repository self-contained:
// no document or comment cites a file a merchant who clones it does not
// have. The marketplace contract is docs/contract.md.
func TestNoReferenceOutsideTheRepository(t *testing.T) {
	forbidden := []struct {
		re *regexp.Regexp
		// inContract: docs/contract.md may say it, to explain what the
		// applied migrations' comments cite.
		inContract bool
	}{
		{regexp.MustCompile(`\.\./shared`), false},
		{regexp.MustCompile(`SPEC\.md`), false},
		{regexp.MustCompile(`ADDENDUM`), false},
		{regexp.MustCompile(`USAGE-SIGNATURE`), false},
		{regexp.MustCompile(`ARCHITECTURE\.md`), false},
		{regexp.MustCompile(`\bSPEC( §|'s\b)`), true},
	}
	for path, text := range repositoryTextFiles(t) {
		for _, f := range forbidden {
			if path == "docs/contract.md" && f.inContract {
				continue
			}
			for _, loc := range f.re.FindAllStringIndex(text, -1) {
				t.Errorf("%s:%d: %q refers outside the repository; cite docs/contract.md (\"contract §N.N\")",
					path, lineOf(text, loc[0]), text[loc[0]:loc[1]])
			}
		}
	}
}

// TestContractReferencesExist checks every "§N.N" of the repository
// against the numbered headings of docs/contract.md, each of which must
// carry its explicit anchor (<a id="sN.N"></a> on the line before). Outside
// docs/contract.md and package koogallery (whose doc comment says that its
// section numbers are the contract's), a reference reads "contract §N.N";
// a list or range may continue it ("contract §6.2, §6.3", "§1.2–§1.9").
func TestContractReferencesExist(t *testing.T) {
	files := repositoryTextFiles(t)
	contract := files["docs/contract.md"]

	sections := map[string]bool{}
	lines := strings.Split(contract, "\n")
	heading := regexp.MustCompile(`^#{2,4} (\d+(?:\.\d+)*)\.? `)
	for i, line := range lines {
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		require.False(t, sections[m[1]], "docs/contract.md numbers two sections %s", m[1])
		sections[m[1]] = true
		anchor := `<a id="s` + m[1] + `"></a>`
		if i == 0 || strings.TrimSpace(lines[i-1]) != anchor {
			t.Errorf("docs/contract.md:%d: section %s is not preceded by its anchor %s", i+1, m[1], anchor)
		}
	}
	for _, want := range []string{"0", "1", "1.0", "2.2", "3", "4.1", "5.3", "6.2", "7", "7.16", "8"} {
		require.True(t, sections[want], "docs/contract.md has no section %s", want)
	}

	ref := regexp.MustCompile(`§(\d+(?:\.\d+)*)`)
	named := regexp.MustCompile(`contract(?:\s|//|#|\*)*$`)
	continues := []string{",", ";", "/", "–", "-", "and", "or", ", and", ", or"}
	count := 0
	for path, text := range files {
		bare := path == "docs/contract.md" || regexp.MustCompile(`^koogallery/[^/]+\.go$`).MatchString(path)
		prevEnd, prevNamed := -1, false
		for _, loc := range ref.FindAllStringSubmatchIndex(text, -1) {
			count++
			number := text[loc[2]:loc[3]]
			if !sections[number] {
				t.Errorf("%s:%d: §%s names no section of docs/contract.md", path, lineOf(text, loc[0]), number)
			}
			isNamed := named.MatchString(text[max(0, loc[0]-24):loc[0]])
			if !isNamed && prevNamed && prevEnd >= 0 && loc[0]-prevEnd < 24 {
				sep := strings.Join(strings.Fields(strings.NewReplacer("//", " ", "#", " ").Replace(text[prevEnd:loc[0]])), " ")
				isNamed = slices.Contains(continues, sep)
			}
			if !bare && !isNamed {
				t.Errorf("%s:%d: write \"contract §%s\": outside package koogallery a bare § does not say which document it cites",
					path, lineOf(text, loc[0]), number)
			}
			prevEnd, prevNamed = loc[1], isNamed
		}
	}
	require.Positive(t, count, "no § reference found: the scan is broken")
}

// lineOf returns the 1-based line of byte offset i in text.
func lineOf(text string, i int) int { return strings.Count(text[:i], "\n") + 1 }

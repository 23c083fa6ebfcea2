package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlTypeLine is one of yaml.v3's type errors: it names the line and Go's
// type, never the field.
var yamlTypeLine = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")

// explainDecodeError rewrites yaml.v3's type errors to name the field (a
// path such as server.write_timeout, found from the line) and to say what
// was wanted in words instead of Go type names.
func explainDecodeError(doc []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var root yaml.Node
	if yaml.NewDecoder(bytes.NewReader(doc)).Decode(&root) != nil {
		return err
	}
	var errs []error
	for _, msg := range te.Errors {
		m := yamlTypeLine.FindStringSubmatch(msg)
		if m == nil {
			errs = append(errs, errors.New(msg))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		field := pathAtLine(&root, line, m[2], m[3], "")
		if field == "" {
			field = "line " + m[1]
		} else {
			field += " (line " + m[1] + ")"
		}
		got := yamlKindWords(m[2])
		if m[3] != "" {
			got += fmt.Sprintf(" %q", m[3])
		}
		errs = append(errs, fmt.Errorf("%s: want %s, got %s", field, typeWords(m[4]), got))
	}
	return errors.Join(errs...)
}

// pathAtLine finds the field whose value is on line and of the kind the
// error names (a scalar with that text, or a list or mapping): "providers[0].timeout".
func pathAtLine(n *yaml.Node, line int, tag, value, path string) string {
	if n.Line == line && path != "" && n.ShortTag() == "!!"+tag && (n.Kind != yaml.ScalarNode || n.Value == value) {
		return path
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := pathAtLine(c, line, tag, value, path); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if path != "" {
				key = path + "." + key
			}
			if p := pathAtLine(n.Content[i+1], line, tag, value, key); p != "" {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p := pathAtLine(c, line, tag, value, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// typeWords says in words what a Go type named in a yaml.v3 error holds.
func typeWords(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration such as 30s or 5m"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "text"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "config."), strings.HasPrefix(goType, "sim."):
		return "a mapping of fields"
	}
	return "another kind of value"
}

// yamlKindWords names a YAML tag in words.
func yamlKindWords(tag string) string {
	switch tag {
	case "str":
		return "text"
	case "int", "float":
		return "the number"
	case "bool":
		return "the boolean"
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	}
	return tag
}

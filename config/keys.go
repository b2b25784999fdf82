package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/crier-dev/crier/internal/fields"
)

// checkKeys walks the YAML document beside the Go type it decodes into:
// it reports EVERY key the type does not know (the decoder alone stops at
// the first) and records the line of every key path for later messages.
func checkKeys(raw []byte, into any) (map[string]int, fields.List, error) {
	f, err := parser.ParseBytes(raw, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	w := &keyWalker{lines: map[string]int{}}
	for _, doc := range f.Docs {
		if doc.Body != nil {
			w.walk(doc.Body, reflect.TypeOf(into), "")
		}
	}
	return w.lines, w.errs, nil
}

type keyWalker struct {
	lines map[string]int
	errs  fields.List
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (w *keyWalker) walk(n ast.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		w.walk(v.Value, t, path)
		return
	case *ast.TagNode:
		w.walk(v.Value, t, path)
		return
	case *ast.MappingNode:
		for _, mv := range v.Values {
			w.entry(mv, t, path)
		}
	case *ast.MappingValueNode:
		w.entry(v, t, path)
	case *ast.SequenceNode:
		if t.Kind() != reflect.Slice {
			return
		}
		for i, item := range v.Values {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = item.GetToken().Position.Line
			w.walk(item, t.Elem(), p)
		}
	}
}

func (w *keyWalker) entry(mv *ast.MappingValueNode, t reflect.Type, path string) {
	key := mv.Key.GetToken().Value
	line := mv.Key.GetToken().Position.Line
	if key == "<<" {
		w.walk(mv.Value, t, path)
		return
	}
	switch t.Kind() {
	case reflect.Map:
		p := join(path, key)
		w.lines[p] = line
		w.walk(mv.Value, t.Elem(), p)
	case reflect.Struct:
		ft, ok := fieldByTag(t, key)
		p := join(path, key)
		if !ok {
			w.errs = append(w.errs, &fields.Error{Path: p, Line: line,
				Msg: fmt.Sprintf("unknown key: known keys here are %s", strings.Join(tagNames(t), ", "))})
			return
		}
		w.lines[p] = line
		w.walk(mv.Value, ft, p)
	}
}

// fieldByTag finds the field a YAML key decodes into, looking through
// inline embedded structs.
func fieldByTag(t reflect.Type, key string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, inline := yamlName(f)
		if name == "-" || !f.IsExported() && !inline {
			continue
		}
		if inline {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if got, ok := fieldByTag(ft, key); ok {
					return got, true
				}
			}
			continue
		}
		if name == key {
			return f.Type, true
		}
	}
	return nil, false
}

func tagNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, inline := yamlName(f)
		if name == "-" {
			continue
		}
		if inline {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, tagNames(ft)...)
			}
			continue
		}
		if f.IsExported() {
			out = append(out, name)
		}
	}
	return out
}

func yamlName(f reflect.StructField) (name string, inline bool) {
	tag := f.Tag.Get("yaml")
	if tag == "-" {
		return "-", false
	}
	parts := strings.Split(tag, ",")
	for _, o := range parts[1:] {
		if o == "inline" {
			return "", true
		}
	}
	if parts[0] != "" {
		return parts[0], false
	}
	if f.Anonymous {
		return "", false
	}
	return strings.ToLower(f.Name), false
}

package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/crier-dev/crier/internal/fields"
)

var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

var secretType = reflect.TypeOf(fields.Secret(""))

func reflectValue(v any) reflect.Value { return reflect.ValueOf(v) }

// resolveSecrets replaces every Secret field's ${ENV} reference with the
// variable's value, or reads it from the sibling <key>_file field. A
// secret written inline in the YAML is an error: config files get copied,
// committed and pasted into tickets.
func resolveSecrets(v reflect.Value, path, dir string, getenv func(string) string) fields.List {
	var errs fields.List
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Map:
		for _, k := range v.MapKeys() {
			errs = append(errs, resolveSecrets(v.MapIndex(k), join(path, fmt.Sprint(k.Interface())), dir, getenv)...)
		}
	case reflect.Slice:
		for i := range v.Len() {
			errs = append(errs, resolveSecrets(v.Index(i), fmt.Sprintf("%s[%d]", path, i), dir, getenv)...)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, inline := yamlName(f)
			fv := v.Field(i)
			if inline {
				errs = append(errs, resolveSecrets(fv, path, dir, getenv)...)
				continue
			}
			if f.Type != secretType {
				errs = append(errs, resolveSecrets(fv, join(path, name), dir, getenv)...)
				continue
			}
			file := fileSibling(v, name+"_file")
			errs = append(errs, resolveOne(fv, file, join(path, name), dir, getenv)...)
		}
	}
	return errs
}

func fileSibling(v reflect.Value, key string) string {
	t := v.Type()
	for i := range t.NumField() {
		if n, _ := yamlName(t.Field(i)); n == key && t.Field(i).Type.Kind() == reflect.String {
			return v.Field(i).String()
		}
	}
	return ""
}

func resolveOne(fv reflect.Value, file, path, dir string, getenv func(string) string) fields.List {
	var errs fields.List
	raw := fv.String()
	switch {
	case raw != "" && file != "":
		errs.Add(path, "", "is set together with %s_file: keep one", path[strings.LastIndex(path, ".")+1:])
	case raw != "":
		m := envRef.FindStringSubmatch(raw)
		if m == nil {
			// Never echo the value: it may be a real credential.
			errs.Add(path, "", "secrets must not be written in the config file: use ${ENV_VAR} or %s_file", path[strings.LastIndex(path, ".")+1:])
			fv.SetString("")
			return errs
		}
		val := getenv(m[1])
		if val == "" {
			errs.Add(path, raw, "environment variable %s is not set or empty: export it, or use %s_file", m[1], path[strings.LastIndex(path, ".")+1:])
		}
		fv.SetString(strings.TrimSpace(val))
	case file != "":
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			errs.Add(path+"_file", file, "cannot be read: %v", unwrapPathErr(err))
			return errs
		}
		val := strings.TrimSpace(string(b))
		if val == "" {
			errs.Add(path+"_file", file, "is empty")
		}
		fv.SetString(val)
	}
	return errs
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

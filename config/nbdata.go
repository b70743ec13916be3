package config

import "regexp"

// NBData is how a cluster reads and writes NocoBase's own backup files
// (.nbdata, the Backup manager's): the password of encrypted ones, and the
// app's database settings that such a file must match (NocoBase refuses
// a backup of another table prefix, schema or underscored setting).
type NBData struct {
	// PasswordEnv names the variable holding the password of encrypted
	// .nbdata files, to read them and to encrypt exported ones.
	PasswordEnv string `yaml:"password_env"`
	// TablePrefix, Schema and Underscored are the nodes' DB_TABLE_PREFIX,
	// DB_SCHEMA and DB_UNDERSCORED (empty, empty, false by default).
	TablePrefix string `yaml:"table_prefix"`
	Schema      string `yaml:"schema"`
	Underscored bool   `yaml:"underscored"`
}

var sqlNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func (n *NBData) validate(p *problems, f string) {
	p.add(checkEnv(f+".password_env", n.PasswordEnv, false))
	if n.TablePrefix != "" && !sqlNameRE.MatchString(n.TablePrefix) {
		p.add(fieldError(f+".table_prefix", "%q is not a table prefix (letters, digits, _)", n.TablePrefix))
	}
	// The Backup manager's own rule for a PostgreSQL schema
	// (adapters/database.js assertPostgresSchemaIdentifier).
	if n.Schema != "" && !sqlNameRE.MatchString(n.Schema) {
		p.add(fieldError(f+".schema", "%q is not a schema name (letters, digits, _; at most 63)", n.Schema))
	}
}

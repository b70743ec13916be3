package backup

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
)

// mysqlShape sizes a NocoBase-shaped MySQL/MariaDB database.
type mysqlShape struct {
	Small     int // small tables ("t_001"…), NocoBase has hundreds
	SmallRows int // rows in each
	Big       int // large tables with JSON and text ("records_1"…)
	BigRows   int // rows in each
	TextBytes int // size of the text column of a large table's row
}

// The session settings under which the routines, triggers and events are
// created: not the server's defaults, so a restore that lost them shows.
// PIPES_AS_CONCAT changes what `||` means inside their bodies.
const (
	shapeSQLMode  = "PIPES_AS_CONCAT,STRICT_ALL_TABLES,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
	shapeTimeZone = "+05:30"
)

// mysqlNocoBaseSQL returns the script that fills an empty database with a
// NocoBase-shaped schema: camelCase names, JSON options, utf8mb4 text with
// emoji and other four-byte characters, a latin1 column, blobs with NUL
// bytes, foreign keys, a view, triggers, a procedure, a function and an
// event created under a non-default sql_mode and time zone, and
// auto-increment counters ahead of the largest id (rows deleted, a counter
// moved by hand). The rows of the large tables are generated inside the
// server (MariaDB's sequence engine), so gigabytes cost no client traffic.
func mysqlNocoBaseSQL(s mysqlShape) string {
	var b strings.Builder
	b.WriteString(`SET NAMES utf8mb4;
SET SESSION time_zone = '+00:00';
CREATE TABLE users (
  id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email varchar(255) UNIQUE, nickname varchar(255), roles json NOT NULL,
  ` + "`createdAt`" + ` datetime(3) NOT NULL, ` + "`updatedAt`" + ` timestamp(6) NULL DEFAULT NULL, sort bigint
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE attachments (
  id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ` + "`createdById`" + ` bigint unsigned, filename varchar(255), meta json, data longblob, mimetype varchar(255), size int,
  CONSTRAINT attachments_user FOREIGN KEY (` + "`createdById`" + `) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE collections (name varchar(191) NOT NULL PRIMARY KEY, options json, sort int) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE fields (` + "`key`" + ` varchar(191) NOT NULL PRIMARY KEY, ` + "`collectionName`" + ` varchar(191), options json,
  FOREIGN KEY (` + "`collectionName`" + `) REFERENCES collections (name)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE ` + "`applicationPlugins`" + ` (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, name varchar(191) UNIQUE,
  ` + "`packageName`" + ` varchar(255), enabled tinyint(1), installed tinyint(1), ` + "`builtIn`" + ` tinyint(1), version varchar(64), options json)
  DEFAULT CHARSET=utf8mb4;
CREATE TABLE migrations (name varchar(191) NOT NULL PRIMARY KEY, ` + "`createdAt`" + ` datetime DEFAULT CURRENT_TIMESTAMP) DEFAULT CHARSET=utf8mb4;
CREATE TABLE ` + "`legacyNotes`" + ` (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, note varchar(255) CHARACTER SET latin1 COLLATE latin1_swedish_ci,
  ` + "`at`" + ` timestamp NULL DEFAULT NULL) DEFAULT CHARSET=utf8mb4;
CREATE TABLE ` + "`auditLogs`" + ` (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, action varchar(64), ` + "`tableName`" + ` varchar(191), ` + "`recordId`" + ` bigint,
  ` + "`createdAt`" + ` timestamp(3) NULL DEFAULT NULL) DEFAULT CHARSET=utf8mb4;
CREATE VIEW ` + "`activeUsers`" + ` AS SELECT id, email, nickname FROM users WHERE JSON_LENGTH(roles) > 1;
`)
	// Users with four-byte characters: emoji, a CJK extension B ideograph,
	// a mathematical letter; and a NUL, tabs and quotes in the text.
	b.WriteString(`INSERT INTO users (email, nickname, roles, ` + "`createdAt`, `updatedAt`" + `, sort) VALUES
  ('admin@nocobase.com', 'Super Admin 👑', '["root","admin","member"]', '2024-01-02 03:04:05.678', '2024-06-30 23:59:59.123456', 1),
  ('emoji@example.com', '😀🎉👩‍👩‍👧‍👦 family', '["member","editor"]', '2024-02-29 12:00:00.000', NULL, 2),
  ('cjk@example.com', '𠜎𠜱𠝹 ideographs 𝒜𝓁𝓅𝒽𝒶', '["member"]', '2024-03-31 01:30:00.000', '2024-03-31 01:30:00.000000', 3),
  ('quotes@example.com', 'O''Brien "quoted" \\back\\ tab\there', '["member","x"]', '2025-01-01 00:00:00.000', '2038-01-19 03:14:07.999999', 4),
  ('nul@example.com', CONCAT('before', CHAR(0), 'after'), '[]', '2025-05-05 05:05:05.005', '1970-01-01 00:00:01.000000', 5);
INSERT INTO users (email, nickname, roles, ` + "`createdAt`" + `, sort)
  SELECT CONCAT('user', seq, '@example.com'), CONCAT('Ünïcødé ', seq, ' ', IF(seq % 3 = 0, '🚀', '𝄞')),
    JSON_ARRAY('member', CONCAT('r', seq % 5)), '2024-01-01 00:00:00' + INTERVAL seq MINUTE, 100 + seq
  FROM seq_1_to_200;
INSERT INTO attachments (` + "`createdById`" + `, filename, meta, data, mimetype, size)
  SELECT 1 + seq % 200, CONCAT('file-', seq, '.png'), JSON_OBJECT('w', seq, 'h', seq * 2, 'tags', JSON_ARRAY('a', seq), 'title', '🖼️ 图片'),
    CONCAT(UNHEX('00FF00'), RANDOM_BYTES(32), UNHEX(MD5(seq))), 'image/png', seq * 100
  FROM seq_1_to_300;
INSERT INTO collections SELECT CONCAT('c', seq), JSON_OBJECT('title', CONCAT('Collection ', seq, ' 📁'), 'fields', seq), seq FROM seq_1_to_20;
INSERT INTO fields SELECT CONCAT('f', seq), CONCAT('c', 1 + seq % 20), JSON_OBJECT('type', 'string', 'interface', 'input', 'uiSchema', JSON_OBJECT('title', CONCAT('字段 ', seq))) FROM seq_1_to_200;
INSERT INTO ` + "`applicationPlugins`" + ` (name, ` + "`packageName`" + `, enabled, installed, ` + "`builtIn`" + `, version, options)
  SELECT CONCAT('p', seq), CONCAT('@nocobase/plugin-p', seq), seq % 3 <> 0, 1, seq % 2 = 0, '2.2.15', '{}' FROM seq_1_to_77;
INSERT INTO migrations (name, ` + "`createdAt`" + `) SELECT CONCAT('2024', LPAD(seq, 4, '0'), '-migration'), '2024-01-01' + INTERVAL seq DAY FROM seq_1_to_50;
INSERT INTO ` + "`legacyNotes`" + ` (note, ` + "`at`" + `) VALUES ('café crème, naïve, Ærø', '2024-10-27 01:30:00'), ('plain', NULL);
-- Counters ahead of the largest id: deleted rows and a counter set by hand.
DELETE FROM attachments WHERE id > 290;
ALTER TABLE migrations COMMENT 'migrations run by NocoBase';
ALTER TABLE ` + "`legacyNotes`" + ` AUTO_INCREMENT = 5000;
`)
	fmt.Fprintf(&b, "SET SESSION sql_mode = '%s';\nSET SESSION time_zone = '%s';\n", shapeSQLMode, shapeTimeZone)
	b.WriteString(`CREATE TRIGGER ` + "`users_audit`" + ` AFTER UPDATE ON users FOR EACH ROW
  INSERT INTO ` + "`auditLogs`" + ` (action, ` + "`tableName`" + `, ` + "`recordId`" + `, ` + "`createdAt`" + `) VALUES ('update' || ':' || NEW.email, 'users', NEW.id, NOW(3));
CREATE TRIGGER ` + "`attachments_size`" + ` BEFORE INSERT ON attachments FOR EACH ROW SET NEW.size = COALESCE(NEW.size, LENGTH(NEW.data));
CREATE FUNCTION ` + "`displayName`" + `(e varchar(255)) RETURNS varchar(300) DETERMINISTIC RETURN 'user:' || e;
CREATE PROCEDURE ` + "`countMembers`" + `(IN role varchar(64), OUT n int) READS SQL DATA
  SELECT COUNT(*) INTO n FROM users WHERE JSON_CONTAINS(roles, JSON_QUOTE(role));
CREATE EVENT ` + "`purgeAudit`" + ` ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00' DISABLE
  DO DELETE FROM ` + "`auditLogs`" + ` WHERE ` + "`createdAt`" + ` < NOW() - INTERVAL 90 DAY;
SET SESSION sql_mode = DEFAULT;
SET SESSION time_zone = '+00:00';
UPDATE users SET sort = sort + 1 WHERE id <= 3;
`)
	for i := 1; i <= s.Small; i++ {
		fmt.Fprintf(&b, "CREATE TABLE `t_%03[1]d` (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, title varchar(255), payload json, amount decimal(12,2), flag tinyint(1), `createdAt` datetime, `userId` bigint unsigned, KEY (`userId`)) DEFAULT CHARSET=utf8mb4;\n", i)
		if s.SmallRows > 0 {
			fmt.Fprintf(&b, "INSERT INTO `t_%03[1]d` (title, payload, amount, flag, `createdAt`, `userId`) SELECT CONCAT('row ', seq, ' ✓'), JSON_OBJECT('g', seq, 'nested', JSON_OBJECT('x', seq * %[1]d)), seq * 1.25, seq %% 2, '2024-01-01' + INTERVAL seq MINUTE, 1 + seq %% 200 FROM seq_1_to_%[2]d;\n", i, s.SmallRows)
		}
	}
	if s.Small > 0 && s.SmallRows > 1 {
		b.WriteString("DELETE FROM `t_001` WHERE id = " + fmt.Sprint(s.SmallRows) + ";\n")
	}
	for i := 1; i <= s.Big; i++ {
		fmt.Fprintf(&b, "CREATE TABLE `records_%[1]d` (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, data json, body longtext, summary varchar(500), `createdAt` timestamp(3) NULL DEFAULT NULL, `updatedById` bigint unsigned, KEY (`createdAt`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;\n", i)
		if s.BigRows > 0 {
			// Rows are inserted in chunks: one statement per million rows
			// keeps the server's undo log small.
			for from := 1; from <= s.BigRows; from += 200000 {
				to := min(from+199999, s.BigRows)
				fmt.Fprintf(&b, "INSERT INTO `records_%[1]d` (data, body, summary, `createdAt`, `updatedById`) SELECT JSON_OBJECT('n', seq, 'title', CONCAT('Record ', seq, ' 📄'), 'tags', JSON_ARRAY('t', seq %% 7, '🏷️'), 'amount', seq * 0.01), CONCAT(REPEAT(MD5(seq), %[2]d), ' 𠀋 ', seq), CONCAT('Résumé ', seq, ' — ', SHA2(seq, 256)), FROM_UNIXTIME(1700000000 + seq), 1 + seq %% 200 FROM seq_%[3]d_to_%[4]d;\n",
					i, max(1, s.TextBytes/32), from, to)
			}
		}
	}
	return b.String()
}

// mysqlCreateShape fills db with the shape.
func mysqlCreateShape(t testing.TB, db string, s mysqlShape) {
	t.Helper()
	testenv.MySQLExec(t, db, mysqlNocoBaseSQL(s))
}

// mysqlSnapshot is what a user would compare before and after a restore:
// the database's character set and collation; every table with its
// engine, collation, auto-increment counter, options and comment; every
// column; CHECKSUM TABLE and the row count of every table; triggers,
// routines, events and views with the sql_mode, time zone and character
// sets they were created under; and what the routines answer.
func mysqlSnapshot(t testing.TB, db string) snapshot {
	t.Helper()
	s := snapshot{}
	q := func(prefix, sql string) []string {
		t.Helper()
		out := testenv.MySQLExec(t, db, sql)
		if out == "" {
			return nil
		}
		rows := strings.Split(out, "\n")
		for _, r := range rows {
			k, v, _ := strings.Cut(r, "\t")
			s[prefix+" "+k] = v
		}
		return rows
	}
	lit := "'" + db + "'"
	q("schema", "SELECT schema_name, CONCAT_WS(' ', default_character_set_name, default_collation_name) FROM information_schema.schemata WHERE schema_name = "+lit)
	var tables []string
	for _, r := range q("table", "SELECT table_name, CONCAT_WS(' ', table_type, engine, table_collation, IFNULL(auto_increment, '-'), create_options, table_comment) FROM information_schema.tables WHERE table_schema = "+lit) {
		name, v, _ := strings.Cut(r, "\t")
		if strings.HasPrefix(v, "BASE TABLE") {
			tables = append(tables, name)
		}
	}
	q("column", "SELECT CONCAT(table_name, '.', column_name), CONCAT_WS(' ', ordinal_position, column_type, IFNULL(character_set_name, '-'), IFNULL(collation_name, '-'), is_nullable, IFNULL(column_default, 'no default'), extra, column_key) FROM information_schema.columns WHERE table_schema = "+lit)
	q("trigger", "SELECT trigger_name, CONCAT_WS(' | ', event_manipulation, action_timing, event_object_table, action_statement, sql_mode, definer, character_set_client, collation_connection, database_collation) FROM information_schema.triggers WHERE trigger_schema = "+lit)
	q("routine", "SELECT CONCAT(routine_type, ' ', routine_name), CONCAT_WS(' | ', routine_definition, dtd_identifier, is_deterministic, sql_data_access, sql_mode, definer, character_set_client, collation_connection, database_collation) FROM information_schema.routines WHERE routine_schema = "+lit)
	q("event", "SELECT event_name, CONCAT_WS(' | ', event_definition, time_zone, sql_mode, interval_value, interval_field, starts, status, on_completion, character_set_client) FROM information_schema.events WHERE event_schema = "+lit)
	q("view", "SELECT table_name, CONCAT_WS(' | ', view_definition, check_option, security_type, character_set_client, collation_connection) FROM information_schema.views WHERE table_schema = "+lit)
	q("key", "SELECT constraint_name, CONCAT_WS(' ', table_name, constraint_type) FROM information_schema.table_constraints WHERE constraint_schema = "+lit)
	sort.Strings(tables)
	if len(tables) > 0 {
		quoted := make([]string, len(tables))
		counts := make([]string, len(tables))
		for i, tb := range tables {
			quoted[i] = "`" + tb + "`"
			counts[i] = fmt.Sprintf("SELECT '%s', COUNT(*) FROM `%s`", tb, tb)
		}
		q("checksum", "CHECKSUM TABLE "+strings.Join(quoted, ", "))
		for i := 0; i < len(counts); i += 200 {
			q("count", strings.Join(counts[i:min(i+200, len(counts))], " UNION ALL "))
		}
	}
	// Behaviour: a routine restored under another sql_mode would answer
	// differently (PIPES_AS_CONCAT).
	if s["routine FUNCTION displayName"] != "" {
		q("call", "SELECT 'displayName', `displayName`('x'); CALL `countMembers`('member', @n); SELECT 'countMembers', @n")
	}
	return s
}

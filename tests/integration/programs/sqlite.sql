-- integ_programs' sqlite3 workload: an in-memory database of real text
-- (lines.tsv: path, line number, text of the Python library's sources),
-- indexed and queried.  Every query orders its output, so the output
-- depends only on the data.
.mode tabs
CREATE TABLE lines(path TEXT, lineno INTEGER, body TEXT);
.import lines.tsv lines
CREATE TABLE words AS
  SELECT path, lineno, substr(ltrim(body), 1, instr(ltrim(body) || ' ', ' ') - 1) AS word,
    length(body) AS len
  FROM lines;
CREATE INDEX lines_path ON lines(path, lineno);
CREATE INDEX words_word ON words(word);
.mode list
SELECT count(*), sum(length(body)), count(DISTINCT path) FROM lines;
SELECT word, count(*) AS n FROM words GROUP BY word ORDER BY n DESC, word LIMIT 15;
SELECT path, count(*) AS n, sum(length(body)) FROM lines GROUP BY path ORDER BY n DESC, path LIMIT 10;
SELECT l.path, l.lineno, w.len FROM lines l JOIN words w ON w.path = l.path AND w.lineno = l.lineno
  WHERE w.word = 'class' ORDER BY w.len DESC, l.path, l.lineno LIMIT 10;
SELECT count(*) FROM lines WHERE body LIKE '%import%';
SELECT sum(len), avg(len) FROM words WHERE word IN ('def', 'return', 'if', 'for');
SELECT hex(substr(group_concat(word, ','), 1, 64)) FROM (SELECT DISTINCT word FROM words ORDER BY word);

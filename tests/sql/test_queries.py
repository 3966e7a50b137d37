"""SELECT: filtering, sorting, grouping, joins, subqueries, CTEs, set operations,
expressions, scalar and window functions. Expected results follow SQLite (checked
against Python's sqlite3) unless a comment says otherwise."""

from __future__ import annotations

from typing import Any

import pytest

import alopex

EMP = [
    (1, "Alice", "eng", 100, None),
    (2, "Bob", "eng", 80, 1),
    (3, "Carol", "sales", 70, 1),
    (4, "Dave", "sales", None, 3),
    (5, "Eve", None, 50, 1),
]


def rows(con: alopex.Connection, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    return con.execute(sql, params).fetchall()


def value(con: alopex.Connection, sql: str, params: Any = ()) -> Any:
    result = rows(con, sql, params)
    assert len(result) == 1 and len(result[0]) == 1, result
    return result[0][0]


@pytest.fixture
def db(con: alopex.Connection) -> alopex.Connection:
    con.execute(
        "CREATE TABLE emp (id INTEGER PRIMARY KEY, name TEXT, dept TEXT, salary INTEGER, "
        "manager_id INTEGER)"
    )
    con.executemany("INSERT INTO emp VALUES (?, ?, ?, ?, ?)", EMP)
    con.execute("CREATE TABLE dept (name TEXT PRIMARY KEY, floor INTEGER)")
    con.execute("INSERT INTO dept VALUES ('eng', 1), ('sales', 2), ('hr', 3)")
    con.execute("CREATE TABLE a (k INTEGER, x TEXT)")
    con.execute("INSERT INTO a VALUES (1, 'a1'), (2, 'a2'), (3, 'a3')")
    con.execute("CREATE TABLE b (k INTEGER, y TEXT)")
    con.execute("INSERT INTO b VALUES (2, 'b2'), (3, 'b3'), (3, 'b3bis'), (4, 'b4')")
    con.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, grp TEXT, val INTEGER)")
    con.execute(
        "INSERT INTO s VALUES (1, 'x', 10), (2, 'x', 20), (3, 'x', 20), (4, 'y', 5), (5, 'y', 15)"
    )
    return con


# -- projection and WHERE --------------------------------------------------------------------


def test_select_star_in_column_order(db: alopex.Connection) -> None:
    assert rows(db, "SELECT * FROM emp WHERE id = 1") == [(1, "Alice", "eng", 100, None)]


def test_projection_with_expressions_and_aliases(db: alopex.Connection) -> None:
    cur = db.execute("SELECT name, salary * 2 AS double_pay, 'k' AS konst FROM emp WHERE id = 2")
    assert [d[0] for d in cur.description] == ["name", "double_pay", "konst"]
    assert cur.fetchall() == [("Bob", 160, "k")]


def test_qualified_star(db: alopex.Connection) -> None:
    got = rows(db, "SELECT d.* FROM emp e JOIN dept d ON d.name = e.dept WHERE e.id = 3")
    assert got == [("sales", 2)]


def test_select_without_from(db: alopex.Connection) -> None:
    assert rows(db, "SELECT 1, 'two', 3.5, NULL") == [(1, "two", 3.5, None)]


def test_where_and_or(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id FROM emp WHERE dept = 'eng' AND salary < 90 OR id = 5 ORDER BY id")
    assert got == [(2,), (5,)]


def test_where_with_parentheses(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id FROM emp WHERE dept = 'eng' AND (salary < 90 OR id = 5)")
    assert got == [(2,)]


def test_table_alias(db: alopex.Connection) -> None:
    assert rows(db, "SELECT e.name FROM emp AS e WHERE e.id = 4") == [("Dave",)]


# -- ORDER BY, LIMIT, OFFSET, DISTINCT -------------------------------------------------------


def test_order_by_asc_puts_nulls_first(db: alopex.Connection) -> None:
    got = rows(db, "SELECT salary FROM emp ORDER BY salary")
    assert got == [(None,), (50,), (70,), (80,), (100,)]


def test_order_by_desc_puts_nulls_last(db: alopex.Connection) -> None:
    got = rows(db, "SELECT salary FROM emp ORDER BY salary DESC")
    assert got == [(100,), (80,), (70,), (50,), (None,)]


def test_order_by_asc_nulls_last(db: alopex.Connection) -> None:
    got = rows(db, "SELECT salary FROM emp ORDER BY salary ASC NULLS LAST")
    assert got == [(50,), (70,), (80,), (100,), (None,)]


def test_order_by_desc_nulls_first(db: alopex.Connection) -> None:
    got = rows(db, "SELECT salary FROM emp ORDER BY salary DESC NULLS FIRST")
    assert got == [(None,), (100,), (80,), (70,), (50,)]


def test_order_by_several_keys(db: alopex.Connection) -> None:
    got = rows(db, "SELECT dept, name FROM emp ORDER BY dept DESC, name ASC")
    assert got == [
        ("sales", "Carol"),
        ("sales", "Dave"),
        ("eng", "Alice"),
        ("eng", "Bob"),
        (None, "Eve"),
    ]


def test_order_by_position_and_alias(db: alopex.Connection) -> None:
    assert rows(db, "SELECT name, id * -1 AS neg FROM emp ORDER BY 2 LIMIT 2") == [
        ("Eve", -5),
        ("Dave", -4),
    ]
    assert rows(db, "SELECT name, id * -1 AS neg FROM emp ORDER BY neg DESC LIMIT 1") == [
        ("Alice", -1)
    ]


def test_order_by_a_column_not_selected(db: alopex.Connection) -> None:
    got = rows(db, "SELECT name FROM emp WHERE salary IS NOT NULL ORDER BY salary")
    assert got == [("Eve",), ("Carol",), ("Bob",), ("Alice",)]


def test_order_by_expression(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id FROM emp ORDER BY id % 2, id DESC")
    assert got == [(4,), (2,), (5,), (3,), (1,)]


def test_order_by_text(db: alopex.Connection) -> None:
    assert rows(db, "SELECT name FROM emp ORDER BY name DESC LIMIT 2") == [("Eve",), ("Dave",)]


def test_limit(db: alopex.Connection) -> None:
    assert rows(db, "SELECT id FROM emp ORDER BY id LIMIT 2") == [(1,), (2,)]


def test_limit_offset(db: alopex.Connection) -> None:
    assert rows(db, "SELECT id FROM emp ORDER BY id LIMIT 2 OFFSET 3") == [(4,), (5,)]


def test_limit_comma_offset_form(db: alopex.Connection) -> None:
    assert rows(db, "SELECT id FROM emp ORDER BY id LIMIT 1, 2") == [(2,), (3,)]


def test_limit_zero_and_offset_past_the_end(db: alopex.Connection) -> None:
    assert rows(db, "SELECT id FROM emp LIMIT 0") == []
    assert rows(db, "SELECT id FROM emp ORDER BY id LIMIT 10 OFFSET 10") == []


def test_limit_with_a_parameter(db: alopex.Connection) -> None:
    assert rows(db, "SELECT id FROM emp ORDER BY id LIMIT ?", (1,)) == [(1,)]


def test_distinct(db: alopex.Connection) -> None:
    assert rows(db, "SELECT DISTINCT dept FROM emp ORDER BY dept") == [
        (None,),
        ("eng",),
        ("sales",),
    ]


def test_distinct_on_several_columns(db: alopex.Connection) -> None:
    got = rows(db, "SELECT DISTINCT grp, val FROM s ORDER BY grp, val")
    assert got == [("x", 10), ("x", 20), ("y", 5), ("y", 15)]


# -- aggregates, GROUP BY, HAVING ------------------------------------------------------------


def test_aggregates_over_the_whole_table(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT count(*), count(salary), sum(salary), avg(salary), min(salary), "
        "max(salary), total(salary) FROM emp",
    )
    assert got == [(5, 4, 300, 75.0, 50, 100, 300.0)]


def test_aggregates_over_an_empty_table(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT count(*), count(salary), sum(salary), avg(salary), min(salary), "
        "max(salary), total(salary) FROM emp WHERE id > 100",
    )
    assert got == [(0, 0, None, None, None, None, 0.0)]


def test_min_and_max_of_text(db: alopex.Connection) -> None:
    assert rows(db, "SELECT min(name), max(name) FROM emp") == [("Alice", "Eve")]


def test_avg_of_integers_is_real(db: alopex.Connection) -> None:
    assert value(db, "SELECT avg(val) FROM s WHERE grp = 'y'") == 10.0
    assert value(db, "SELECT avg(val) FROM s WHERE id IN (1, 2, 4)") == pytest.approx(35 / 3)


def test_count_distinct(db: alopex.Connection) -> None:
    assert rows(db, "SELECT count(DISTINCT dept), count(DISTINCT val) FROM emp, s") == [(2, 4)]


def test_sum_distinct(db: alopex.Connection) -> None:
    assert value(db, "SELECT sum(DISTINCT val) FROM s") == 50


def test_group_concat_default_separator(db: alopex.Connection) -> None:
    got = value(db, "SELECT group_concat(name) FROM (SELECT name FROM emp ORDER BY id)")
    assert got == "Alice,Bob,Carol,Dave,Eve"


def test_group_concat_with_separator(db: alopex.Connection) -> None:
    got = value(
        db, "SELECT group_concat(name, ' | ') FROM (SELECT name FROM emp WHERE dept = 'eng')"
    )
    assert got == "Alice | Bob"


def test_group_concat_skips_nulls(db: alopex.Connection) -> None:
    got = value(db, "SELECT group_concat(salary, ';') FROM (SELECT salary FROM emp ORDER BY id)")
    assert got == "100;80;70;50"


def test_group_by(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT dept, count(*), sum(salary), max(name) FROM emp GROUP BY dept ORDER BY dept",
    )
    assert got == [
        (None, 1, 50, "Eve"),
        ("eng", 2, 180, "Bob"),
        ("sales", 2, 70, "Dave"),
    ]


def test_group_by_expression(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id % 2 AS odd, count(*) FROM emp GROUP BY id % 2 ORDER BY odd")
    assert got == [(0, 2), (1, 3)]


def test_group_by_alias_and_position(db: alopex.Connection) -> None:
    assert rows(db, "SELECT grp AS g, sum(val) FROM s GROUP BY g ORDER BY 1") == [
        ("x", 50),
        ("y", 20),
    ]
    assert rows(db, "SELECT grp, sum(val) FROM s GROUP BY 1 ORDER BY 2") == [
        ("y", 20),
        ("x", 50),
    ]


def test_group_by_two_columns(db: alopex.Connection) -> None:
    got = rows(db, "SELECT grp, val, count(*) FROM s GROUP BY grp, val ORDER BY grp, val")
    assert got == [("x", 10, 1), ("x", 20, 2), ("y", 5, 1), ("y", 15, 1)]


def test_having(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT dept, count(*) AS n FROM emp GROUP BY dept HAVING count(*) > 1 ORDER BY dept",
    )
    assert got == [("eng", 2), ("sales", 2)]


def test_having_on_an_aggregate_not_selected(db: alopex.Connection) -> None:
    got = rows(db, "SELECT dept FROM emp GROUP BY dept HAVING sum(salary) > 100")
    assert got == [("eng",)]


def test_order_by_an_aggregate(db: alopex.Connection) -> None:
    got = rows(db, "SELECT grp FROM s GROUP BY grp ORDER BY sum(val)")
    assert got == [("y",), ("x",)]


def test_aggregate_of_an_expression(db: alopex.Connection) -> None:
    assert value(db, "SELECT sum(val * 2 + 1) FROM s") == 145


def test_expression_of_aggregates(db: alopex.Connection) -> None:
    assert value(db, "SELECT max(val) - min(val) FROM s") == 15


# -- joins -----------------------------------------------------------------------------------


def test_inner_join(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT e.name, d.floor FROM emp e INNER JOIN dept d ON e.dept = d.name ORDER BY e.id",
    )
    assert got == [("Alice", 1), ("Bob", 1), ("Carol", 2), ("Dave", 2)]


def test_join_with_duplicate_keys(db: alopex.Connection) -> None:
    got = rows(db, "SELECT a.x, b.y FROM a JOIN b ON a.k = b.k ORDER BY a.x, b.y")
    assert got == [("a2", "b2"), ("a3", "b3"), ("a3", "b3bis")]


def test_implicit_join_in_where(db: alopex.Connection) -> None:
    got = rows(db, "SELECT a.x, b.y FROM a, b WHERE a.k = b.k AND b.y <> 'b3' ORDER BY b.y")
    assert got == [("a2", "b2"), ("a3", "b3bis")]


def test_left_join(db: alopex.Connection) -> None:
    got = rows(db, "SELECT a.x, b.y FROM a LEFT JOIN b ON a.k = b.k ORDER BY a.x, b.y")
    assert got == [("a1", None), ("a2", "b2"), ("a3", "b3"), ("a3", "b3bis")]


def test_left_join_with_a_condition_on_the_right_side(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT a.x, b.y FROM a LEFT JOIN b ON a.k = b.k AND b.y LIKE '%bis' ORDER BY a.x",
    )
    assert got == [("a1", None), ("a2", None), ("a3", "b3bis")]


def test_left_join_where_right_is_null(db: alopex.Connection) -> None:
    got = rows(db, "SELECT a.x FROM a LEFT JOIN b ON a.k = b.k WHERE b.k IS NULL")
    assert got == [("a1",)]


def test_right_join(db: alopex.Connection) -> None:
    got = rows(db, "SELECT a.x, b.y FROM a RIGHT JOIN b ON a.k = b.k ORDER BY b.y")
    assert got == [("a2", "b2"), ("a3", "b3"), ("a3", "b3bis"), (None, "b4")]


def test_full_join(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT a.x, b.y FROM a FULL OUTER JOIN b ON a.k = b.k ORDER BY a.x NULLS LAST, b.y",
    )
    assert got == [
        ("a1", None),
        ("a2", "b2"),
        ("a3", "b3"),
        ("a3", "b3bis"),
        (None, "b4"),
    ]


def test_cross_join(db: alopex.Connection) -> None:
    assert value(db, "SELECT count(*) FROM a CROSS JOIN b") == 12
    got = rows(db, "SELECT a.k, d.name FROM a CROSS JOIN dept d WHERE a.k = 1 ORDER BY d.name")
    assert got == [(1, "eng"), (1, "hr"), (1, "sales")]


def test_join_using(db: alopex.Connection) -> None:
    cur = db.execute("SELECT * FROM a JOIN b USING (k) ORDER BY y")
    assert [d[0] for d in cur.description] == ["k", "x", "y"]
    assert cur.fetchall() == [(2, "a2", "b2"), (3, "a3", "b3"), (3, "a3", "b3bis")]


def test_left_join_using(db: alopex.Connection) -> None:
    got = rows(db, "SELECT k, x, y FROM a LEFT JOIN b USING (k) ORDER BY k, y")
    assert got == [(1, "a1", None), (2, "a2", "b2"), (3, "a3", "b3"), (3, "a3", "b3bis")]


def test_self_join(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT e.name, m.name FROM emp e JOIN emp m ON e.manager_id = m.id ORDER BY e.id",
    )
    assert got == [("Bob", "Alice"), ("Carol", "Alice"), ("Dave", "Carol"), ("Eve", "Alice")]


def test_three_way_join(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT e.name, m.name, d.floor FROM emp e JOIN emp m ON e.manager_id = m.id "
        "JOIN dept d ON d.name = m.dept ORDER BY e.id",
    )
    assert got == [
        ("Bob", "Alice", 1),
        ("Carol", "Alice", 1),
        ("Dave", "Carol", 2),
        ("Eve", "Alice", 1),
    ]


def test_join_on_a_non_equality(db: alopex.Connection) -> None:
    got = rows(db, "SELECT a.k, b.k FROM a JOIN b ON a.k > b.k ORDER BY a.k, b.k")
    assert got == [(3, 2)]


def test_join_with_aggregate(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT d.name, count(e.id) FROM dept d LEFT JOIN emp e ON e.dept = d.name "
        "GROUP BY d.name ORDER BY d.name",
    )
    assert got == [("eng", 2), ("hr", 0), ("sales", 2)]


# -- subqueries ------------------------------------------------------------------------------


def test_scalar_subquery_in_where(db: alopex.Connection) -> None:
    got = rows(db, "SELECT name FROM emp WHERE salary = (SELECT max(salary) FROM emp)")
    assert got == [("Alice",)]


def test_scalar_subquery_in_select(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id, (SELECT count(*) FROM dept) FROM emp WHERE id < 3 ORDER BY id")
    assert got == [(1, 3), (2, 3)]


def test_scalar_subquery_without_rows_is_null(db: alopex.Connection) -> None:
    assert value(db, "SELECT (SELECT id FROM emp WHERE id > 100)") is None


def test_in_subquery(db: alopex.Connection) -> None:
    got = rows(db, "SELECT name FROM emp WHERE dept IN (SELECT name FROM dept WHERE floor = 2)")
    assert sorted(got) == [("Carol",), ("Dave",)]


def test_not_in_subquery(db: alopex.Connection) -> None:
    got = rows(
        db, "SELECT name FROM dept WHERE name NOT IN (SELECT dept FROM emp WHERE dept IS NOT NULL)"
    )
    assert got == [("hr",)]


def test_exists(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT d.name FROM dept d WHERE EXISTS (SELECT 1 FROM emp e WHERE e.dept = d.name) "
        "ORDER BY d.name",
    )
    assert got == [("eng",), ("sales",)]


def test_not_exists(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT d.name FROM dept d WHERE NOT EXISTS (SELECT 1 FROM emp e WHERE e.dept = d.name)",
    )
    assert got == [("hr",)]


def test_correlated_subquery_in_where(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT e.name FROM emp e WHERE e.salary > "
        "(SELECT avg(x.salary) FROM emp x WHERE x.dept = e.dept) ORDER BY e.name",
    )
    assert got == [("Alice",)]


def test_correlated_subquery_in_select(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT d.name, (SELECT count(*) FROM emp e WHERE e.dept = d.name) FROM dept d "
        "ORDER BY d.name",
    )
    assert got == [("eng", 2), ("hr", 0), ("sales", 2)]


def test_subquery_in_from(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT t.dept, t.total FROM (SELECT dept, sum(salary) AS total FROM emp "
        "GROUP BY dept) AS t WHERE t.total > 60 ORDER BY t.total",
    )
    assert got == [("sales", 70), ("eng", 180)]


def test_scalar_subquery_with_two_rows_uses_the_first(db: alopex.Connection) -> None:
    assert value(db, "SELECT (SELECT id FROM emp ORDER BY id DESC)") == 5


# -- WITH ------------------------------------------------------------------------------------


def test_with_clause(db: alopex.Connection) -> None:
    got = rows(
        db,
        "WITH rich AS (SELECT name, salary FROM emp WHERE salary >= 80) "
        "SELECT name FROM rich ORDER BY salary",
    )
    assert got == [("Bob",), ("Alice",)]


def test_with_several_ctes_referring_to_each_other(db: alopex.Connection) -> None:
    got = rows(
        db,
        "WITH a2 AS (SELECT k FROM a WHERE k > 1), a3 AS (SELECT k * 10 AS k10 FROM a2) "
        "SELECT sum(k10) FROM a3",
    )
    assert got == [(50,)]


def test_with_column_names(db: alopex.Connection) -> None:
    assert rows(db, "WITH c(x, y) AS (SELECT 1, 2) SELECT y, x FROM c") == [(2, 1)]


def test_with_recursive_counts_to_ten(db: alopex.Connection) -> None:
    got = rows(
        db,
        "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 10) "
        "SELECT x FROM cnt",
    )
    assert got == [(n,) for n in range(1, 11)]


def test_with_recursive_sum(db: alopex.Connection) -> None:
    got = value(
        db,
        "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 10) "
        "SELECT sum(x) FROM cnt",
    )
    assert got == 55


def test_with_recursive_walks_a_hierarchy(db: alopex.Connection) -> None:
    got = rows(
        db,
        "WITH RECURSIVE chain(id, name, depth) AS ("
        "  SELECT id, name, 0 FROM emp WHERE manager_id IS NULL"
        "  UNION ALL"
        "  SELECT e.id, e.name, c.depth + 1 FROM emp e JOIN chain c ON e.manager_id = c.id"
        ") SELECT name, depth FROM chain ORDER BY depth, name",
    )
    assert got == [("Alice", 0), ("Bob", 1), ("Carol", 1), ("Eve", 1), ("Dave", 2)]


def test_with_recursive_union_stops_on_repeats(db: alopex.Connection) -> None:
    got = rows(
        db,
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION SELECT (x % 3) + 1 FROM r) "
        "SELECT x FROM r ORDER BY x",
    )
    assert got == [(1,), (2,), (3,)]


# -- set operations --------------------------------------------------------------------------


def test_union_removes_duplicates(db: alopex.Connection) -> None:
    got = rows(db, "SELECT k FROM a UNION SELECT k FROM b ORDER BY k")
    assert got == [(1,), (2,), (3,), (4,)]


def test_union_all_keeps_duplicates(db: alopex.Connection) -> None:
    got = rows(db, "SELECT k FROM a UNION ALL SELECT k FROM b ORDER BY k")
    assert got == [(1,), (2,), (2,), (3,), (3,), (3,), (4,)]


def test_intersect(db: alopex.Connection) -> None:
    assert rows(db, "SELECT k FROM b INTERSECT SELECT k FROM a ORDER BY k") == [(2,), (3,)]


def test_except(db: alopex.Connection) -> None:
    assert rows(db, "SELECT k FROM b EXCEPT SELECT k FROM a") == [(4,)]


def test_intersect_all(db: alopex.Connection) -> None:
    # bag semantics (PostgreSQL): min(count left, count right) copies
    got = rows(
        db,
        "SELECT k FROM b INTERSECT ALL SELECT k FROM (SELECT 3 AS k UNION ALL SELECT 3 "
        "UNION ALL SELECT 3 UNION ALL SELECT 4) ORDER BY k",
    )
    assert got == [(3,), (3,), (4,)]


def test_except_all(db: alopex.Connection) -> None:
    # bag semantics (PostgreSQL): count left - count right copies
    got = rows(db, "SELECT k FROM b EXCEPT ALL SELECT k FROM a ORDER BY k")
    assert got == [(3,), (4,)]


def test_union_with_limit(db: alopex.Connection) -> None:
    got = rows(db, "SELECT k FROM a UNION SELECT k FROM b ORDER BY k DESC LIMIT 2")
    assert got == [(4,), (3,)]


def test_union_of_three(db: alopex.Connection) -> None:
    assert rows(db, "SELECT 1 UNION SELECT 2 UNION SELECT 1 ORDER BY 1") == [(1,), (2,)]


def test_union_column_names_come_from_the_left(db: alopex.Connection) -> None:
    cur = db.execute("SELECT k AS first FROM a UNION SELECT k FROM b")
    assert [d[0] for d in cur.description] == ["first"]


def test_union_with_mismatched_columns_raises(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        db.execute("SELECT k, x FROM a UNION SELECT k FROM b")


# -- expressions -----------------------------------------------------------------------------


def test_searched_case(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT name, CASE WHEN salary >= 80 THEN 'high' WHEN salary >= 60 THEN 'mid' "
        "ELSE 'low' END FROM emp ORDER BY id",
    )
    assert got == [
        ("Alice", "high"),
        ("Bob", "high"),
        ("Carol", "mid"),
        ("Dave", "low"),
        ("Eve", "low"),
    ]


def test_simple_case_without_else(db: alopex.Connection) -> None:
    got = rows(
        db, "SELECT CASE dept WHEN 'eng' THEN 1 WHEN 'sales' THEN 2 END FROM emp ORDER BY id"
    )
    assert got == [(1,), (1,), (2,), (2,), (None,)]


def test_case_in_an_aggregate(db: alopex.Connection) -> None:
    got = value(db, "SELECT sum(CASE WHEN dept = 'eng' THEN 1 ELSE 0 END) FROM emp")
    assert got == 2


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("CAST('42' AS INTEGER)", 42),
        ("CAST(3.9 AS INTEGER)", 3),
        ("CAST(-3.9 AS INTEGER)", -3),
        ("CAST(42 AS TEXT)", "42"),
        ("CAST(1.5 AS TEXT)", "1.5"),
        ("CAST('3.5' AS REAL)", 3.5),
        ("CAST(7 AS REAL)", 7.0),
        ("CAST(NULL AS INTEGER)", None),
        ("CAST('12abc' AS INTEGER)", 12),
    ],
)
def test_cast(db: alopex.Connection, expression: str, expected: Any) -> None:
    got = value(db, f"SELECT {expression}")
    assert got == expected
    assert type(got) is type(expected)


def test_cast_text_to_date(db: alopex.Connection) -> None:
    import datetime as dt

    assert value(db, "SELECT CAST('2024-03-05' AS DATE)") == dt.date(2024, 3, 5)


def test_cast_column(db: alopex.Connection) -> None:
    assert value(db, "SELECT CAST(salary AS TEXT) FROM emp WHERE id = 1") == "100"


def test_between(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id FROM emp WHERE salary BETWEEN 70 AND 90 ORDER BY id")
    assert got == [(2,), (3,)]


def test_not_between(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id FROM emp WHERE salary NOT BETWEEN 70 AND 90 ORDER BY id")
    assert got == [(1,), (5,)]


def test_like_is_case_insensitive(db: alopex.Connection) -> None:
    assert rows(db, "SELECT name FROM emp WHERE name LIKE 'a%'") == [("Alice",)]


def test_like_underscore(db: alopex.Connection) -> None:
    assert rows(db, "SELECT name FROM emp WHERE name LIKE '_ve'") == [("Eve",)]


def test_not_like(db: alopex.Connection) -> None:
    got = rows(db, "SELECT name FROM emp WHERE name NOT LIKE '%e' ORDER BY id")
    assert got == [("Bob",), ("Carol",)]


def test_like_escape(db: alopex.Connection) -> None:
    got = value(db, r"SELECT '10%' LIKE '10\%' ESCAPE '\'")
    assert got == 1
    assert value(db, r"SELECT '100' LIKE '10\%' ESCAPE '\'") == 0


def test_like_with_regex_metacharacters(db: alopex.Connection) -> None:
    assert value(db, "SELECT 'a.c' LIKE 'a.c'") == 1
    assert value(db, "SELECT 'abc' LIKE 'a.c'") == 0


def test_glob_is_case_sensitive(db: alopex.Connection) -> None:
    assert rows(db, "SELECT name FROM emp WHERE name GLOB 'A*'") == [("Alice",)]
    assert rows(db, "SELECT name FROM emp WHERE name GLOB 'a*'") == []


def test_glob_classes(db: alopex.Connection) -> None:
    got = rows(db, "SELECT name FROM emp WHERE name GLOB '[BC]?*' ORDER BY name")
    assert got == [("Bob",), ("Carol",)]


def test_ilike(db: alopex.Connection) -> None:
    # PostgreSQL's case-insensitive LIKE
    assert rows(db, "SELECT name FROM emp WHERE name ILIKE 'CAR%'") == [("Carol",)]


def test_not_ilike(db: alopex.Connection) -> None:
    got = rows(db, "SELECT name FROM emp WHERE name NOT ILIKE '%E' ORDER BY id")
    assert got == [("Bob",), ("Carol",)]


def test_not_glob(db: alopex.Connection) -> None:
    got = rows(db, "SELECT name FROM emp WHERE name NOT GLOB '*e' ORDER BY id")
    assert got == [("Bob",), ("Carol",)]


def test_in_list(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id FROM emp WHERE name IN ('Bob', 'Eve', 'Zed') ORDER BY id")
    assert got == [(2,), (5,)]


def test_not_in_list(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id FROM emp WHERE id NOT IN (1, 2, 3) ORDER BY id")
    assert got == [(4,), (5,)]


def test_in_list_with_column_items(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id FROM emp WHERE 80 IN (salary, manager_id * 80) ORDER BY id")
    assert got == [(2,), (3,), (5,)]


def test_coalesce(db: alopex.Connection) -> None:
    got = rows(db, "SELECT coalesce(salary, manager_id, -1) FROM emp WHERE id IN (1, 4)")
    assert sorted(got) == [(3,), (100,)]
    assert value(db, "SELECT coalesce(NULL, NULL, 'x')") == "x"
    assert value(db, "SELECT coalesce(NULL, NULL)") is None


def test_nullif(db: alopex.Connection) -> None:
    assert value(db, "SELECT nullif(1, 1)") is None
    assert value(db, "SELECT nullif(1, 2)") == 1
    assert value(db, "SELECT nullif('a', 'b')") == "a"


def test_ifnull(db: alopex.Connection) -> None:
    assert value(db, "SELECT ifnull(NULL, 5)") == 5
    assert value(db, "SELECT ifnull(3, 5)") == 3
    got = rows(db, "SELECT ifnull(dept, 'none') FROM emp WHERE id = 5")
    assert got == [("none",)]


def test_string_concatenation(db: alopex.Connection) -> None:
    assert value(db, "SELECT name || '@' || dept FROM emp WHERE id = 1") == "Alice@eng"
    assert value(db, "SELECT 'n' || 1 || 2.5") == "n12.5"


def test_comparison_of_text(db: alopex.Connection) -> None:
    assert rows(db, "SELECT name FROM emp WHERE name > 'Carol' ORDER BY name") == [
        ("Dave",),
        ("Eve",),
    ]


# -- integer arithmetic (SQLite) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("7 / 2", 3),
        ("-7 / 2", -3),
        ("7 / -2", -3),
        ("7 % 3", 1),
        ("7 % -3", 1),
        ("-7 % 3", -1),
        ("1 / 0", None),
        ("1 % 0", None),
        ("1.0 / 0", None),
        ("7.0 / 2", 3.5),
        ("7 / 2.0", 3.5),
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("-(3 - 5)", 2),
        ("10 - 2 - 3", 5),
        ("2 * 3.5", 7.0),
        ("9223372036854775807 - 1", 9223372036854775806),
    ],
)
def test_arithmetic(db: alopex.Connection, expression: str, expected: Any) -> None:
    got = value(db, f"SELECT {expression}")
    assert got == expected
    assert type(got) is type(expected)


def test_integer_division_of_columns(db: alopex.Connection) -> None:
    got = rows(db, "SELECT val / 10, val % 10 FROM s ORDER BY id")
    assert got == [(1, 0), (2, 0), (2, 0), (0, 5), (1, 5)]


# -- scalar functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("abs(-5)", 5),
        ("abs(-2.5)", 2.5),
        ("abs(NULL)", None),
        ("length('hello')", 5),
        ("length('héllo')", 5),
        ("length('')", 0),
        ("length(NULL)", None),
        ("lower('HeLLo')", "hello"),
        ("upper('HeLLo')", "HELLO"),
        ("substr('hello', 2, 3)", "ell"),
        ("substr('hello', 2)", "ello"),
        ("substr('hello', -3)", "llo"),
        ("substr('hello', -3, 2)", "ll"),
        ("substring('hello', 1, 1)", "h"),
        ("trim('  x  ')", "x"),
        ("ltrim('  x  ')", "x  "),
        ("rtrim('  x  ')", "  x"),
        ("trim('xxhixx', 'x')", "hi"),
        ("replace('hello', 'l', 'L')", "heLLo"),
        ("replace('abc', 'z', 'y')", "abc"),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("round(3.14159, 2)", 3.14),
        ("round(7)", 7.0),
        ("typeof(1)", "integer"),
        ("typeof(1.5)", "real"),
        ("typeof('a')", "text"),
        ("typeof(NULL)", "null"),
        ("typeof(x'00')", "blob"),
        ("instr('hello', 'll')", 3),
        ("instr('hello', 'z')", 0),
        ("instr('hello', 'h')", 1),
    ],
)
def test_scalar_function(db: alopex.Connection, expression: str, expected: Any) -> None:
    got = value(db, f"SELECT {expression}")
    if expected is None:
        assert got is None
    else:
        assert got == expected
        assert type(got) is type(expected)


def test_functions_over_columns(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT upper(substr(name, 1, 2)), length(name), instr(name, 'e') FROM emp ORDER BY id",
    )
    assert got == [("AL", 5, 5), ("BO", 3, 0), ("CA", 5, 0), ("DA", 4, 4), ("EV", 3, 3)]


def test_function_names_are_case_insensitive(db: alopex.Connection) -> None:
    assert value(db, "SELECT LENGTH('abc') + Abs(-1)") == 4


# -- window functions ------------------------------------------------------------------------


def test_row_number(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id, row_number() OVER (ORDER BY val DESC, id) FROM s ORDER BY id")
    assert got == [(1, 4), (2, 1), (3, 2), (4, 5), (5, 3)]


def test_row_number_with_partition(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT id, row_number() OVER (PARTITION BY grp ORDER BY id DESC) FROM s ORDER BY id",
    )
    assert got == [(1, 3), (2, 2), (3, 1), (4, 2), (5, 1)]


def test_rank_and_dense_rank_with_ties(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT id, rank() OVER (ORDER BY val DESC), dense_rank() OVER (ORDER BY val DESC) "
        "FROM s ORDER BY id",
    )
    assert got == [(1, 4, 3), (2, 1, 1), (3, 1, 1), (4, 5, 4), (5, 3, 2)]


def test_lag_and_lead(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT id, lag(val) OVER (ORDER BY id), lead(val) OVER (ORDER BY id) FROM s ORDER BY id",
    )
    assert got == [(1, None, 20), (2, 10, 20), (3, 20, 5), (4, 20, 15), (5, 5, None)]


def test_lag_with_offset_and_default(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT id, lag(val, 2, -1) OVER (PARTITION BY grp ORDER BY id) FROM s ORDER BY id",
    )
    assert got == [(1, -1), (2, -1), (3, 10), (4, -1), (5, -1)]


def test_first_value_and_last_value(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT id, first_value(val) OVER w, last_value(val) OVER w FROM s "
        "WINDOW w AS (PARTITION BY grp ORDER BY id "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) ORDER BY id",
    )
    assert got == [(1, 10, 20), (2, 10, 20), (3, 10, 20), (4, 5, 15), (5, 5, 15)]


def test_last_value_with_the_default_frame_stops_at_the_current_row(
    db: alopex.Connection,
) -> None:
    got = rows(
        db, "SELECT id, last_value(val) OVER (PARTITION BY grp ORDER BY id) FROM s ORDER BY id"
    )
    assert got == [(1, 10), (2, 20), (3, 20), (4, 5), (5, 15)]


def test_count_over_peers_with_the_default_range_frame(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id, count(*) OVER (ORDER BY val) FROM s ORDER BY id")
    assert got == [(1, 2), (2, 5), (3, 5), (4, 1), (5, 3)]


def test_running_sum_with_partition(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT id, sum(val) OVER (PARTITION BY grp ORDER BY id) FROM s ORDER BY id",
    )
    assert got == [(1, 10), (2, 30), (3, 50), (4, 5), (5, 20)]


def test_sum_over_peers_with_the_default_range_frame(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id, sum(val) OVER (ORDER BY val) FROM s ORDER BY id")
    assert got == [(1, 15), (2, 70), (3, 70), (4, 5), (5, 30)]


def test_avg_over_a_sliding_rows_frame(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT id, avg(val) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) "
        "FROM s ORDER BY id",
    )
    assert [r[0] for r in got] == [1, 2, 3, 4, 5]
    assert [r[1] for r in got] == pytest.approx([15.0, 50 / 3, 15.0, 40 / 3, 10.0])


def test_count_over_partition(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id, count(*) OVER (PARTITION BY grp) FROM s ORDER BY id")
    assert got == [(1, 3), (2, 3), (3, 3), (4, 2), (5, 2)]


def test_sum_over_the_whole_table(db: alopex.Connection) -> None:
    got = rows(db, "SELECT id, val * 100 / sum(val) OVER () FROM s ORDER BY id")
    assert got == [(1, 14), (2, 28), (3, 28), (4, 7), (5, 21)]


def test_window_in_a_subquery_filtered_outside(db: alopex.Connection) -> None:
    got = rows(
        db,
        "SELECT grp, val FROM (SELECT grp, val, row_number() OVER (PARTITION BY grp "
        "ORDER BY val DESC, id) AS rn FROM s) WHERE rn = 1 ORDER BY grp",
    )
    assert got == [("x", 20), ("y", 15)]


@pytest.mark.parametrize("distinct", [3, 2000])  # dense codes, and the sorting fallback
def test_group_by_two_keys_matches_sqlite(con: alopex.Connection, distinct: int) -> None:
    import random
    import sqlite3

    rng = random.Random(distinct)
    data = [
        (n, rng.choice([None, *range(distinct)]), rng.choice([None, "x", *map(str, range(9))]))
        for n in range(3000)
    ]
    reference = sqlite3.connect(":memory:")
    for target in (con, reference):
        target.execute("CREATE TABLE g(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
        target.executemany("INSERT INTO g VALUES (?, ?, ?)", data)
    query = "SELECT a, b, count(*), min(id) FROM g GROUP BY a, b"
    assert rows(con, query) == reference.execute(query + " ORDER BY min(id)").fetchall()


TOP_K = [
    "SELECT id, a FROM t ORDER BY a, id DESC LIMIT 7",
    "SELECT id, a FROM t ORDER BY a DESC, id LIMIT 30 OFFSET 25",
    "SELECT id, f FROM t ORDER BY f DESC, id LIMIT 5",
    "SELECT id, a * 2 AS twice FROM t WHERE a < 15 ORDER BY twice, id DESC LIMIT 40",
    "SELECT id, n FROM t ORDER BY n, id LIMIT 10",  # NULLs first: the full sort
    "SELECT a, count(*) FROM t GROUP BY a ORDER BY count(*) DESC, a LIMIT 3",
]


@pytest.mark.parametrize("query", TOP_K)
def test_order_by_limit_over_many_rows_matches_sqlite(con: alopex.Connection, query: str) -> None:
    """ORDER BY .. LIMIT over thousands of rows sorts only the rows whose first key can
    make the cut; heavy ties on that key must all be kept for the later keys to rank."""
    import random
    import sqlite3

    rng = random.Random(5)
    data = [
        (n, rng.randrange(20), rng.choice([0.5, 1.5, 2.5, -1.0]), rng.choice([None, 1, 2]))
        for n in range(5000)
    ]
    reference = sqlite3.connect(":memory:")
    for target in (con, reference):
        target.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, f REAL, n INTEGER)")
        target.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", data)
    assert rows(con, query) == reference.execute(query).fetchall()


CORRELATED = [
    "SELECT id FROM o WHERE EXISTS (SELECT 1 FROM i WHERE i.k = o.k)",
    "SELECT id FROM o WHERE NOT EXISTS (SELECT 1 FROM i WHERE i.k = o.k AND i.v > 2)",
    "SELECT id FROM o WHERE EXISTS (SELECT 1 FROM i WHERE o.k = i.k AND i.w = o.w)",
    "SELECT id FROM o WHERE EXISTS (SELECT 1 FROM i WHERE i.k + 1 = o.k + 1)",
    "SELECT id, (SELECT count(*) FROM i WHERE i.k = o.k) FROM o",
    "SELECT id, (SELECT max(v) FROM i WHERE i.k = o.k) FROM o",
    "SELECT id, (SELECT coalesce(sum(v), -1) * 2 FROM i WHERE i.k = o.k AND i.v < 4) FROM o",
    "SELECT id, (SELECT total(v) FROM i AS x WHERE x.k = o.k AND x.w = o.w) FROM o",
    "SELECT id FROM o WHERE (SELECT count(*) FROM i WHERE i.k = o.k) > 1",
    "SELECT id FROM o WHERE EXISTS (SELECT 1 FROM i WHERE i.k = o.k AND i.v > o.id)",  # per row
    "SELECT id FROM o WHERE o.w IN (SELECT w FROM i WHERE i.k = o.k)",  # per row
]


@pytest.mark.parametrize("query", CORRELATED)
def test_correlated_subqueries_match_sqlite(con: alopex.Connection, query: str) -> None:
    """Equality-correlated EXISTS and scalar aggregates run as joins (sql/decorrelate.py);
    the answers, NULLs and empty groups included, must be SQLite's."""
    import sqlite3

    outer = [(1, 1, "a"), (2, 2, "b"), (3, None, "c"), (4, 9, None), (5, 2, "b"), (6, 1, "z")]
    inner = [(1, 1, "a", 1), (2, 1, "a", 5), (3, 2, "b", None), (4, None, "c", 3), (5, 2, "x", 2)]
    reference = sqlite3.connect(":memory:")
    for target in (con, reference):
        target.execute("CREATE TABLE o(id INTEGER PRIMARY KEY, k INTEGER, w TEXT)")
        target.execute("CREATE TABLE i(id INTEGER PRIMARY KEY, k INTEGER, w TEXT, v INTEGER)")
        target.executemany("INSERT INTO o VALUES (?, ?, ?)", outer)
        target.executemany("INSERT INTO i VALUES (?, ?, ?, ?)", inner)
    assert sorted(rows(con, query), key=repr) == sorted(reference.execute(query), key=repr)

"""Between the LMS and the grader: `collect` (a Canvas or Moodle download -> nbgrader's layout),
`roster` (who is enrolled), `export` (final grades as the LMS imports them)."""

"""Where the grader meets other systems: a Gradescope autograder zip that is the local grader
(gradescope), and LMS downloads and grade imports (lms/)."""

"""A module no test imports: a request naming it must not make the web process import it."""

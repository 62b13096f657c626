"""Organisation: districts, streets, communities, grids, departments, teams, people, matters."""

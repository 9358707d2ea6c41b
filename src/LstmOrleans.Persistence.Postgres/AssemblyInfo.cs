namespace LstmOrleans.Persistence.Postgres;

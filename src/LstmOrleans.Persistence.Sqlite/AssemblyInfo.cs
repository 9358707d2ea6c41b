namespace LstmOrleans.Persistence.Sqlite;

namespace LstmOrleans.Abstractions;

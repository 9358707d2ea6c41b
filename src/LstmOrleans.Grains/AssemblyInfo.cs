namespace LstmOrleans.Grains;

Console.WriteLine("lstmorleans");
